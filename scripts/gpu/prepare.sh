#!/usr/bin/env bash
# Run HERE, where the package registry is reachable: gathers into gpu_carry/ (ignored by git,
# < 60 MiB) what the GPU machine lacks, so that it travels with the working tree:
#   - pure-Python (or cp312 manylinux) wheels of what our core imports and that machine does not
#     have (it has jax 0.11, flax, optax, orbax-checkpoint, chex, absl-py, tensorboard, torch,
#     onnx, onnxruntime; no clu, ml_collections, TensorFlow or tensorflow-datasets);
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
  -d "$OUT/wheels" clu==0.0.12 ml-collections==1.1.0 wrapt==1.17.2 PyYAML==6.0.2 \
  matplotlib==3.11.2 kiwisolver==1.4.8 contourpy==1.3.2 cycler==0.12.1 pyparsing==3.2.3 \
  python-dateutil==2.9.0.post0 six==1.17.0 pillow==11.2.1 fonttools==4.58.4
DATA=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
cp "$DATA"/*-ubyte* "$OUT/data/"
du -sh "$OUT"
