#!/usr/bin/env bash
# Sets everything up (pinned deps, test extras, the dataset) and runs the test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/python -m pytest tests "$@"
