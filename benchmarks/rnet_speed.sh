#!/bin/bash
# same-run CPU timings: fit vs rnet vs rnet+fit vs rnet-prior (the default engine) on 8 LFW photos (batch 8 and batch 1), start-up of one photo
cd "$(dirname "$0")/.."
CK=${1:-facerecon/resources/rnet_default.pt}
P=$(ls ../shared/faces/lfw/Aaron_Peirsol/*.jpg ../shared/faces/lfw/Abdullah_Gul/*.jpg | head -8)
one=../shared/faces/lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg
for e in rnet rnet+fit rnet-prior fit; do
  extra=""; [ $e != fit ] && extra="--rnet $CK"
  rm -rf /tmp/spd; s=$(date +%s.%N)
  .venv/bin/facerecon reconstruct $P -o /tmp/spd --engine $e $extra --quiet --texture-size 512 > /dev/null 2>&1
  echo "$e 8 photos batch 8: $(echo "$(date +%s.%N) - $s" | bc) s"
  rm -rf /tmp/spd; s=$(date +%s.%N)
  .venv/bin/facerecon reconstruct $one -o /tmp/spd --engine $e $extra --quiet > /dev/null 2>&1
  echo "$e 1 photo (whole command incl. start-up, texture 1024): $(echo "$(date +%s.%N) - $s" | bc) s"
done
.venv/bin/facerecon bench rnet --checkpoint $CK --batch 1 8
.venv/bin/facerecon --threads 2 bench rnet --checkpoint $CK --batch 1 8
