#!/bin/bash
# R-Net figures on every instrument:
#   benchmarks/rnet_eval.sh CKPT TAG [ENGINE...]   (default engines: rnet rnet+fit)
# For each engine (rnet, rnet+fit or rnet-prior, each with its own defaults and CKPT as the
# network): the real-skin renders, LFW identity (40 x 5) and 300-W test NME (all 330), in
# work/bench/{nme,id,rs}_ENGINE_TAG.*  (about 10-15 min an engine on one thread).
# Compare two tags with benchmarks/paired.py (NME, real skin) and identity_bootstrap.py (LFW).
set -u
cd "$(dirname "$0")/.."
mkdir -p work/bench
CK=$1; TAG=$2; shift 2
ENGINES=${*:-rnet rnet+fit}
PY=.venv/bin/python
for E in $ENGINES; do
    N=${E//+/}
    NEUTRAL=""; [ "$E" = "rnet-prior" ] || NEUTRAL="--no-neutral"
    echo "== realskin $E $(date)"   # first: the figure that has decided shipping
    $PY benchmarks/lps_realskin.py --engine $E --rnet $CK $NEUTRAL --json work/bench/rs_${N}_$TAG.json \
        > work/bench/rs_${N}_$TAG.log 2>&1
    echo "== identity $E $(date)"
    $PY benchmarks/identity_lfw.py --engine $E --rnet $CK --cache work/bench/id_${N}_$TAG.npz \
        --json work/bench/id_${N}_$TAG.json > work/bench/id_${N}_$TAG.log 2>&1
    echo "== NME $E $(date)"
    .venv/bin/facerecon --threads 1 evaluate landmarks --source fit --engine $E --rnet $CK --json \
        > work/bench/nme_${N}_$TAG.json 2> work/bench/nme_${N}_$TAG.log
done
echo "== done $(date)"
