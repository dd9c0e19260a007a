#!/bin/bash
# The GPU figures of the R-Net issue in one run, each printed as soon as it is measured and kept
# under $OUT (default out/gpu_check): renderer images/s and R-Net photos/s at batch 256, batched
# fitting photos/s at batch 1/8/64, training photos/s with the full hybrid loss (train.jsonl's
# images_per_s). Cheapest first, so a run cut short still returns the early figures.
#
#   DEV=cuda SHARDS=work/rnet/shards bash benchmarks/gpu_check.sh
#   DEV=cpu SMALL=1 SHARDS=work/rnet/shards bash benchmarks/gpu_check.sh     # the same steps, tiny, on CPU
#
# Needs an environment where `facerecon` imports and its FaceNet and face-model caches resolve
# (FACERECON_ICT, XDG_CACHE_HOME), and a shards folder (`facerecon data prepare`); nothing is downloaded.
set -u -o pipefail
cd "$(dirname "$0")/.."
DEV=${DEV:-cuda}
OUT=${OUT:-out/gpu_check}
SHARDS=${SHARDS:-work/rnet/shards}
FR=${FR:-.venv/bin/facerecon}
[ -x "$FR" ] || FR="python3 -m facerecon.cli"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [ "${SMALL:-0}" = 1 ]; then
  BIG=4; FITB="1 2"; COUNT=4; STEPS=4; TB=4; LOG=2
else
  BIG=256; FITB="1 8 64"; COUNT=128; STEPS=60; TB=256; LOG=20
fi
step() {  # name, command...: run it, keep its output, say how long it took
  local name=$1; shift
  local t0=$(date +%s.%N)
  echo "== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc, $(echo "$(date +%s.%N) - $t0" | bc) s"
}
[ "$DEV" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
step render $FR bench render --device "$DEV" --batch $BIG --json
step rnet $FR bench rnet --device "$DEV" --batch 1 $BIG --json
step fit $FR bench fit --device "$DEV" --batch $FITB --count $COUNT --json
step train $FR train --data "$SHARDS" -o "$OUT/train" --device "$DEV" --net-trunk facenet --net-landmark-input \
    --steps $STEPS --batch-size $TB --lr 1e-4 --warmup 5 --loss-landmark 2e-4 --perceptual-every 1 \
    --log-every $LOG --validate-every 0 --checkpoint-every 100000 --amp bf16 --no-progress
echo "== training photos/s (full hybrid loss, FaceNet every step):"
grep -o '"images_per_s": [0-9.]*' "$OUT/train/train.jsonl" | tee "$OUT/train_speed.txt"
