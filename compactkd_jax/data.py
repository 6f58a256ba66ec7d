"""Where images come from: IDX files (the default Fashion-MNIST) or tensorflow-datasets, and the
validation split carved out of train. Everything here is host-side NumPy; `feed.py` puts it on the
devices.
"""
import dataclasses
import gzip
import os

import numpy as np

from compactkd_jax.errors import UserError

DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclasses.dataclass
class Split:
  images: np.ndarray  # uint8, NHWC
  labels: np.ndarray  # int32

  def __len__(self):
    return len(self.labels)

  def take(self, n: int | None) -> "Split":
    return self if not n else Split(self.images[:n], self.labels[:n])


@dataclasses.dataclass
class Dataset:
  train: Split
  validation: Split
  test: Split
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.train.images.shape[1:])


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (optionally gzipped): magic, dims, then the raw array."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise UserError(f"cannot read IDX file {path}: {e}; reinstall the dataset") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise UserError(f"{path} is not an IDX file (bad magic number); reinstall the dataset")
  ndim = raw[3]
  dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int) if len(raw) >= 4 + 4 * ndim \
      else None
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  if dims is None or len(raw) - 4 - 4 * ndim != int(np.prod(dims)) * dtype.itemsize:
    raise UserError(f"{path} is truncated or corrupt (its size does not match its header); "
                    "reinstall the dataset")
  return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims)


def _find(directory: str, stem: str) -> str:
  for name in (stem, stem + ".gz"):
    if os.path.exists(os.path.join(directory, name)):
      return os.path.join(directory, name)
  raise UserError(f"{stem}[.gz] not found in {directory}: install the Debian package "
                  "dataset-fashion-mnist (bash scripts/setup.sh does) or set "
                  "--config.data.data_dir to a directory with the IDX files")


def load_idx_split(directory: str, split: str) -> Split:
  if not os.path.isdir(directory):
    raise UserError(f"data directory {directory} does not exist: install the Debian package "
                    "dataset-fashion-mnist (bash scripts/setup.sh does) or set "
                    "--config.data.data_dir")
  image_file, label_file = (_find(directory, s) for s in IDX_FILES[split])
  images, labels = read_idx(image_file), read_idx(label_file)
  if images.ndim == 3:
    images = images[..., None]
  if len(images) != len(labels):
    raise UserError(f"{image_file} has {len(images)} images but {label_file} has {len(labels)} "
                    "labels; reinstall the dataset")
  return Split(np.ascontiguousarray(images, np.uint8), labels.astype(np.int32))


def load_tfds_split(name: str, split: str, data_dir: str | None) -> tuple[Split, int]:
  """A tfds split as NumPy, never downloading: a dataset that is not on disk is a clear error."""
  try:
    import tensorflow_datasets as tfds  # the one data path that needs TensorFlow
  except ImportError:
    raise UserError("data.source='tfds' needs tensorflow-datasets and TensorFlow, which are not "
                    "installed here; install them (pip install tensorflow-datasets==4.9.10 "
                    "tensorflow-cpu==2.21.0) or use data.source='idx'") from None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(f"unknown tfds dataset {name!r}; see tfds.list_builders() for valid names, "
                    "or use data.source='idx'") from None
  try:
    ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=False)
  except (AssertionError, FileNotFoundError) as e:
    raise UserError(f"tfds dataset {name!r} is not prepared in {data_dir or 'the tfds data dir'}; "
                    f"prepare it with `tfds build {name}` first ({str(e).splitlines()[0]})") from None
  # Batches of a fixed size, not batch_size=-1: that sizes the batch from split metadata, which is
  # empty for datasets without it (and under tfds.testing.mock_data).
  chunks = list(tfds.as_numpy(ds.batch(4096)))
  if not chunks:
    raise UserError(f"tfds dataset {name!r} split {split!r} is empty")
  images = np.concatenate([c[0] for c in chunks])
  labels = np.concatenate([c[1] for c in chunks])
  images = images[..., None] if images.ndim == 3 else images
  num_classes = builder.info.features["label"].num_classes
  return Split(np.asarray(images, np.uint8), np.asarray(labels, np.int32)), num_classes


def split_validation(train: Split, size: int, seed: int) -> tuple[Split, Split]:
  """A fixed random subset of train becomes validation; every decision is made on it."""
  if not 0 < size < len(train):
    raise UserError(f"data.validation_size={size} must be between 1 and {len(train) - 1}")
  order = np.random.default_rng(seed).permutation(len(train))
  val, rest = np.sort(order[:size]), np.sort(order[size:])
  return (Split(train.images[rest], train.labels[rest]),
          Split(train.images[val], train.labels[val]))


def load_dataset(cfg) -> Dataset:
  """The dataset named by the config's `data` section, with its validation split."""
  if cfg.source == "idx":
    directory = cfg.data_dir or DEFAULT_IDX_DIR
    train, test = (load_idx_split(directory, s) for s in ("train", "test"))
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
  elif cfg.source == "tfds":
    (train, num_classes), (test, _) = (load_tfds_split(cfg.name, s, cfg.data_dir or None)
                                       for s in ("train", "test"))
  else:
    raise UserError(f"unknown data.source {cfg.source!r}; valid: 'idx', 'tfds'")
  train = train.take(cfg.train_limit)
  train, validation = split_validation(train, cfg.validation_size, cfg.split_seed)
  return Dataset(train, validation, test.take(cfg.test_limit), num_classes)
