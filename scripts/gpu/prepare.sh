#!/usr/bin/env bash
# Run HERE, where the package registry is reachable: gathers into gpu_carry/ (ignored by git,
# < 60 MiB) what the GPU machine lacks, so that it travels with the working tree:
#   - pure-Python wheels of what our core imports and that machine does not have (it has jax
#     0.11, flax, optax, orbax-checkpoint, chex, absl-py, tensorboard, torch, matplotlib, PyYAML,
#     wrapt, onnx, onnxruntime; no clu, ml_collections, TensorFlow or tensorflow-datasets). run.sh
#     installs each only where its module is missing;
#   - the Fashion-MNIST IDX files.
# Then, through the device tool: run `bash scripts/gpu/run.sh` with carry ["gpu_carry"].
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=gpu_carry
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/data"
PY=${PYTHON:-.venv/bin/python}
# --no-deps: exactly these (their own dependencies are on that machine or listed here).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -d "$OUT/wheels" clu==0.0.12 ml-collections==1.1.0
DATA=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
cp "$DATA"/*-ubyte* "$OUT/data/"
du -sh "$OUT"
