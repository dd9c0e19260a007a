#!/bin/bash
# R-Net figures on every instrument: benchmarks/rnet_eval.sh CKPT TAG  (results in work/bench/*_TAG.*; ~35 min on 2 cores)
set -u
cd "$(dirname "$0")/.."
mkdir -p work/bench
CK=$1; TAG=$2
PY=.venv/bin/python
echo "== NME rnet $(date)"
.venv/bin/facerecon evaluate landmarks --source fit --engine rnet --rnet $CK --json > work/bench/nme_rnet_$TAG.json 2> work/bench/nme_rnet_$TAG.log
echo "== identity rnet $(date)"
$PY benchmarks/identity_lfw.py --engine rnet --rnet $CK --cache work/bench/id_rnet_$TAG.npz --json work/bench/id_rnet_$TAG.json > work/bench/id_rnet_$TAG.log 2>&1
echo "== realskin rnet $(date)"
$PY benchmarks/lps_realskin.py --engine rnet --rnet $CK --no-neutral --json work/bench/rs_rnet_$TAG.json > work/bench/rs_rnet_$TAG.log 2>&1
echo "== NME rnet+fit $(date)"
.venv/bin/facerecon evaluate landmarks --source fit --engine rnet+fit --rnet $CK --json > work/bench/nme_rnetfit_$TAG.json 2> work/bench/nme_rnetfit_$TAG.log
echo "== identity rnet+fit $(date)"
$PY benchmarks/identity_lfw.py --engine rnet+fit --rnet $CK --cache work/bench/id_rnetfit_$TAG.npz --json work/bench/id_rnetfit_$TAG.json > work/bench/id_rnetfit_$TAG.log 2>&1
echo "== realskin rnet+fit $(date)"
$PY benchmarks/lps_realskin.py --engine rnet+fit --rnet $CK --no-neutral --json work/bench/rs_rnetfit_$TAG.json > work/bench/rs_rnetfit_$TAG.log 2>&1
echo "== done $(date)"
