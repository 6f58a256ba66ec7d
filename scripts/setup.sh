#!/usr/bin/env bash
# Idempotent setup: a .venv with the pinned project and its deploy extra (LiteRT/ONNX export and
# runtimes; --test adds the test extra), and the Fashion-MNIST IDX files.
# Usage: bash scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="[deploy]"
[ "${1:-}" = "--test" ] && extras="[deploy,test]"
# Reinstall only when pyproject.toml changed since the last successful install.
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch is pinned to the CPU build (test extra only): never let a resolver pick a CUDA build.
  .venv/bin/python -m pip install -q -e ".$extras"
  touch "$stamp"
fi

DATA=/usr/share/datasets/fashion-mnist
if [ ! -d "$DATA" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing the Debian package dataset-fashion-mnist ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "Fashion-MNIST is not in $DATA and apt-get is not usable here." >&2
    echo "Put the four IDX files (train-images-idx3-ubyte[.gz], ...) in a directory and run with" >&2
    echo "  --config.data.data_dir=<that directory>" >&2
  fi
fi
