#!/usr/bin/env bash
# The reproduction table: for each seed, one teacher and one block-wise distillation, then every
# budget from them (each budget's workdir starts as a copy of the finished teacher and distill
# phases, distill/scores.json included, so they are not recomputed), then results/fashion_mnist.{md,json}.
# Usage: bash scripts/reproduce.sh [teacher] [seeds] [budgets] [runs dir]
#   e.g. bash scripts/reproduce.sh resnet56 "0 1" "flops:0.5 flops:0.25"
#        bash scripts/reproduce.sh mobilenet_v2 "0 1" "flops:0.5 flops:0.25 params:0.1923"
# Interrupt it at any time; rerunning the same command resumes where it stopped. REPRODUCE_NOTE, if
# set, goes into the table's header (e.g. what else shared the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
TEACHER=${1:-resnet56}
SEEDS=${2:-0 1}
BUDGETS=${3:-flops:0.5 flops:0.25}
RUNS=${4:-runs/reproduce}
FAILED=""
CONFIG="configs/reproduce_fashion_mnist.py:$TEACHER"
run() { .venv/bin/python -m compactkd_jax.main --config "$CONFIG" "$@"; }
for seed in $SEEDS; do
  base="$RUNS/$TEACHER/seed$seed/base"
  run --workdir "$base" --config.seed="$seed" --config.phases="('teacher', 'distill')"
  for budget in $BUDGETS; do
    metric=${budget%%:*}; fraction=${budget##*:}
    workdir="$RUNS/$TEACHER/seed$seed/${metric}_$fraction"
    if [ ! -d "$workdir" ]; then
      mkdir -p "$workdir.tmp"
      cp -r "$base/config.json" "$base/teacher" "$base/distill" "$workdir.tmp/"
      mv "$workdir.tmp" "$workdir"
    fi
    # One budget failing (say, infeasible for the menu) does not stop the others.
    run --workdir "$workdir" --config.seed="$seed" --config.select.metric="$metric" \
        --config.select.budget="$fraction" || FAILED="$FAILED $TEACHER/seed$seed/$budget"
  done
done
.venv/bin/python scripts/summarize_reproduction.py "$RUNS" --out results/fashion_mnist \
    --note "${REPRODUCE_NOTE:-}"
if [ -n "$FAILED" ]; then
  echo "error: these budgets failed (see their messages above):$FAILED" >&2
  exit 1
fi
