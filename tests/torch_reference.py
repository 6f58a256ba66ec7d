"""Loads scripts/torch_baseline/ (models.py, finetune.py) for the tests that compare against
PyTorch, and the real Fashion-MNIST images they feed both frameworks.

Importing this module skips the importing test module when torch (the `test` extra) is missing.
"""
import functools
import os
import sys

import numpy as np
import pytest

from compactkd_jax import data

torch = pytest.importorskip("torch")
# One thread: PyTorch's OpenMP workers spin-wait against XLA's thread pool (and any other job) on a
# 2-core machine, which made the small forward passes here 50x slower (2 s instead of 0.04 s).
torch.set_num_threads(1)

# scripts/ holds the PyTorch references as the package torch_baseline (not installed): put it on
# the path, as the scripts that use it do.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
from torch_baseline import finetune, models  # noqa: E402

# Fashion-MNIST pixel statistics (train split), so normalized inputs have unit scale.
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


def real_images(directory: str, shape, count: int = 8) -> np.ndarray:
  """The first `count` test images, normalized, NHWC float32 of `shape` (28x28x1 as stored, or
  zero-padded to 32x32 and repeated to 3 channels)."""
  x = _test_images(directory)[:count].astype(np.float32) / 255.0
  x = (x - FMNIST_MEAN) / FMNIST_STD
  h, w, c = shape
  pad_h, pad_w = (h - x.shape[1]) // 2, (w - x.shape[2]) // 2
  x = np.pad(x, ((0, 0), (pad_h, h - x.shape[1] - pad_h), (pad_w, w - x.shape[2] - pad_w), (0, 0)))
  return np.ascontiguousarray(np.repeat(x, c, axis=-1), np.float32)


@functools.lru_cache(maxsize=None)
def _test_images(directory: str) -> np.ndarray:
  return data.load_idx_split(directory, "test").images


def to_nchw(x: np.ndarray):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
