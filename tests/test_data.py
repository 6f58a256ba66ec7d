"""Tests for compactkd_jax.data: the IDX reader on the real Fashion-MNIST files, corrupt files,
the validation split, and the tfds path under `tfds.testing.mock_data` (never downloading)."""
import gzip
import json
import os
import shutil
import struct
import textwrap

import numpy as np
import pytest

from compactkd_jax import data
from compactkd_jax.config import default_config
from compactkd_jax.errors import UserError

from conftest import (SMALL_TEST_LIMIT, SMALL_TRAIN_LIMIT, SMALL_VALIDATION_SIZE, run_python,
                      small_data_config)


def _gunzip(src: str, dst: str) -> None:
  with gzip.open(src, "rb") as f, open(dst, "wb") as g:
    shutil.copyfileobj(f, g)


def _idx_path(directory: str, stem: str) -> str:
  path = os.path.join(directory, stem)
  return path if os.path.exists(path) else path + ".gz"


def data_config(data_dir: str, **overrides):
  """The default `data` section reading from data_dir, with overrides."""
  cfg = default_config().data
  cfg.data_dir = data_dir
  cfg.update(overrides)
  return cfg


def test_full_fashion_mnist(fmnist_dir):
  train = data.load_idx_split(fmnist_dir, "train")
  test = data.load_idx_split(fmnist_dir, "test")
  assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
  assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
  # Published: 10 balanced classes, 6,000 train and 1,000 test images each.
  np.testing.assert_array_equal(np.bincount(train.labels), np.full(10, 6000))
  np.testing.assert_array_equal(np.bincount(test.labels), np.full(10, 1000))
  # The widely quoted normalization statistics of the Fashion-MNIST training set.
  pixels = train.images.astype(np.float64) / 255.0
  assert pixels.mean() == pytest.approx(0.2860, abs=5e-4)
  assert pixels.std() == pytest.approx(0.3530, abs=5e-4)


def test_uncompressed_copy_equals_gzipped(fmnist_dir, tmp_path):
  for stem in data.IDX_FILES["test"]:
    _gunzip(_idx_path(fmnist_dir, stem), str(tmp_path / stem))
  plain = data.load_idx_split(str(tmp_path), "test")
  gz = data.load_idx_split(fmnist_dir, "test")
  np.testing.assert_array_equal(plain.images, gz.images)
  np.testing.assert_array_equal(plain.labels, gz.labels)


def test_read_idx_matches_hand_encoded_file(tmp_path):
  """An independent encoder (struct, big-endian) for several IDX element types."""
  rng = np.random.default_rng(0)
  cases = {0x08: rng.integers(0, 256, (3, 4, 5)).astype(np.uint8),
           0x0B: rng.integers(-3000, 3000, (7, 2)).astype(">i2"),
           0x0D: rng.normal(size=(6,)).astype(">f4")}
  for code, array in cases.items():
    path = tmp_path / f"{code}.idx"
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())
    got = data.read_idx(str(path))
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    # The same bytes gzipped read the same.
    gz_path = str(path) + ".gz"
    with gzip.open(gz_path, "wb") as f:
      f.write(header + array.tobytes())
    np.testing.assert_array_equal(data.read_idx(gz_path), array)


@pytest.mark.parametrize("cut", [1, 100, 9990])
def test_truncated_idx_is_user_error(fmnist_dir, tmp_path, cut):
  stem = "t10k-labels-idx1-ubyte"
  with gzip.open(_idx_path(fmnist_dir, stem), "rb") as f:
    raw = f.read()
  path = tmp_path / stem
  path.write_bytes(raw[:len(raw) - cut])
  with pytest.raises(UserError, match="truncated"):
    data.read_idx(str(path))


def test_header_only_fragment_is_user_error(tmp_path):
  path = tmp_path / "fragment"
  path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))  # promises 3 dims, has half of one
  with pytest.raises(UserError, match="truncated"):
    data.read_idx(str(path))


def test_truncated_gzip_stream_is_user_error(fmnist_dir, tmp_path):
  src = _idx_path(fmnist_dir, "t10k-labels-idx1-ubyte")
  if not src.endswith(".gz"):
    pytest.skip("the installed files are not gzipped")
  with open(src, "rb") as f:
    raw = f.read()
  path = tmp_path / "t10k-labels-idx1-ubyte.gz"
  path.write_bytes(raw[:len(raw) // 2])
  with pytest.raises(UserError):
    data.read_idx(str(path))


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"GIF8"])
def test_bad_magic_is_user_error(tmp_path, magic):
  path = tmp_path / "bad"
  path.write_bytes(magic + struct.pack(">I", 4) + bytes(4))
  with pytest.raises(UserError, match="bad magic"):
    data.read_idx(str(path))


def test_missing_directory_is_user_error(tmp_path):
  cfg = data_config(str(tmp_path / "nonexistent"))
  with pytest.raises(UserError, match="does not exist"):
    data.load_dataset(cfg)


def test_missing_files_are_user_error(tmp_path):
  with pytest.raises(UserError, match="not found"):
    data.load_idx_split(str(tmp_path), "train")


def test_mismatched_image_and_label_counts_are_user_error(fmnist_dir, tmp_path):
  images, labels = data.IDX_FILES["test"]
  _gunzip(_idx_path(fmnist_dir, images), str(tmp_path / images))
  label_array = np.arange(9999, dtype=np.uint8) % 10
  (tmp_path / labels).write_bytes(struct.pack(">BBBBI", 0, 0, 0x08, 1, 9999) +
                                  label_array.tobytes())
  with pytest.raises(UserError, match="labels"):
    data.load_idx_split(str(tmp_path), "test")


def test_small_dataset_sizes(small_dataset):
  assert len(small_dataset.train) == SMALL_TRAIN_LIMIT - SMALL_VALIDATION_SIZE
  assert len(small_dataset.validation) == SMALL_VALIDATION_SIZE
  assert len(small_dataset.test) == SMALL_TEST_LIMIT
  assert small_dataset.num_classes == 10
  assert small_dataset.image_shape == (28, 28, 1)
  for split in (small_dataset.train, small_dataset.validation, small_dataset.test):
    assert split.images.dtype == np.uint8 and split.labels.dtype == np.int32
    assert split.images.shape == (len(split), 28, 28, 1)


def test_split_validation_is_a_disjoint_cover(fmnist_dir):
  full = data.load_idx_split(fmnist_dir, "test")
  # Tag every example with its index (in the label slot) to trace it through the split.
  tagged = data.Split(full.images[:3000], np.arange(3000, dtype=np.int32))
  train, val = data.split_validation(tagged, 700, seed=3)
  assert len(train) == 2300 and len(val) == 700
  assert not set(train.labels) & set(val.labels)
  np.testing.assert_array_equal(np.sort(np.concatenate([train.labels, val.labels])),
                                np.arange(3000))
  # Images travel with their tags.
  np.testing.assert_array_equal(train.images, full.images[train.labels])
  np.testing.assert_array_equal(val.images, full.images[val.labels])
  # A fixed function of the seed; another seed gives another split.
  again = data.split_validation(tagged, 700, seed=3)[1]
  np.testing.assert_array_equal(again.labels, val.labels)
  other = data.split_validation(tagged, 700, seed=4)[1]
  assert set(other.labels) != set(val.labels)


@pytest.mark.parametrize("size", [0, 3000, -1])
def test_split_validation_rejects_bad_sizes(size):
  split = data.Split(np.zeros((3000, 2, 2, 1), np.uint8), np.zeros(3000, np.int32))
  with pytest.raises(UserError, match="validation_size"):
    data.split_validation(split, size, 0)


def test_load_dataset_is_deterministic(fmnist_dir, small_dataset):
  cfg = small_data_config()
  cfg.data_dir = fmnist_dir
  again = data.load_dataset(cfg)
  np.testing.assert_array_equal(again.validation.images, small_dataset.validation.images)
  np.testing.assert_array_equal(again.train.labels, small_dataset.train.labels)


def test_unknown_data_source_is_user_error():
  with pytest.raises(UserError, match="idx"):
    data.load_dataset(data_config("", source="csv"))


def test_unknown_tfds_name_is_user_error():
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(UserError, match="no_such_dataset"):
    data.load_dataset(data_config("", source="tfds", name="no_such_dataset"))


def test_tfds_path_under_mock_data(tmp_path):
  """cifar10 through the tfds path with mock data. Runs in a subprocess: a failure inside
  TensorFlow can abort the whole interpreter rather than raise."""
  pytest.importorskip("tensorflow_datasets")
  code = textwrap.dedent("""
      import json
      import tensorflow_datasets as tfds
      from compactkd_jax import config, data
      cfg = config.default_config().data
      cfg.source, cfg.name, cfg.validation_size = "tfds", "cifar10", 8
      with tfds.testing.mock_data(num_examples=24):
        ds = data.load_dataset(cfg)
      print(json.dumps({
          name: {"shape": list(s.images.shape), "dtype": str(s.images.dtype),
                 "label_dtype": str(s.labels.dtype), "max_label": int(s.labels.max())}
          for name, s in (("train", ds.train), ("validation", ds.validation), ("test", ds.test))
      } | {"num_classes": ds.num_classes}))
  """)
  proc = run_python(["-c", code], timeout=180, extra_env={"TFDS_DATA_DIR": str(tmp_path)})
  assert proc.returncode == 0, (f"exit {proc.returncode}; stderr tail:\n"
                                + "\n".join(proc.stderr.strip().splitlines()[-5:]))
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["num_classes"] == 10
  assert result["train"]["shape"] == [16, 32, 32, 3]
  assert result["validation"]["shape"] == [8, 32, 32, 3]
  assert result["test"]["shape"] == [24, 32, 32, 3]
  for name in ("train", "validation", "test"):
    assert result[name]["dtype"] == "uint8" and result[name]["label_dtype"] == "int32"
    assert 0 <= result[name]["max_label"] < 10
