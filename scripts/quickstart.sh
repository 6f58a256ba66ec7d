#!/usr/bin/env bash
# Sets everything up and runs the main job (configs/quickstart.py) on the full Fashion-MNIST.
# Usage: bash scripts/quickstart.sh [workdir] [--config.overrides ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WORKDIR=${1:-runs/quickstart}
shift || true
.venv/bin/python -m compactkd_jax.main --config configs/quickstart.py --workdir "$WORKDIR" "$@"
echo "report: $WORKDIR/report.md  results: $WORKDIR/results.json  plot: $WORKDIR/tradeoff.png"
