"""Feeding the devices: one mesh of all devices, datasets resident on device, batches as sharded
index vectors, normalization and augmentation inside jit.

A batch is a vector of example indices sharded over the mesh's data axis; the jit-compiled step
gathers the images itself, so no image crosses the host-device boundary after start-up. The index
stream is a pure function of (seed, step), which makes resume exact: the iterator position is the
step number stored in the checkpoint.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from compactkd_jax.data import Split
from compactkd_jax.errors import UserError

DATA_AXIS = "data"


def make_mesh() -> Mesh:
  """All devices of all processes on one data axis; parameters are replicated over it."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def put_global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A global array from a host array that every process holds in full (works multi-process)."""
  return jax.make_array_from_callback(array.shape, sharding, lambda idx: array[idx])


def replicate(tree, mesh: Mesh):
  """Every leaf of a host or single-device pytree as a global array replicated over the mesh.
  Unlike jax.device_put this also works across processes (each process holds the same values)."""
  return jax.tree.map(lambda x: put_global(_x32(np.asarray(jax.device_get(x))), replicated(mesh)),
                      tree)


def _x32(a: np.ndarray) -> np.ndarray:
  """Python ints and floats (a TrainState's step) become JAX's default 32-bit types."""
  return a.astype({np.dtype(np.int64): np.int32, np.dtype(np.float64): np.float32}.get(a.dtype,
                                                                                      a.dtype))


@dataclasses.dataclass
class DeviceSplit:
  """A split living on the devices (replicated), plus its size on the host."""
  images: jax.Array
  labels: jax.Array
  size: int

  @classmethod
  def create(cls, split: Split, mesh: Mesh) -> "DeviceSplit":
    return cls(put_global(split.images, replicated(mesh)), put_global(split.labels, replicated(mesh)),
               len(split))


def check_batch_size(batch_size: int, mesh: Mesh, what: str) -> None:
  if batch_size % mesh.size:
    raise UserError(f"{what}={batch_size} must be divisible by the number of devices ({mesh.size})")


def train_indices(size: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """Indices of training batch `step`: a fresh permutation per epoch, last partial batch dropped."""
  per_epoch = size // batch_size
  if per_epoch == 0:
    raise UserError(f"batch size {batch_size} is larger than the training split ({size})")
  epoch, pos = divmod(step, per_epoch)
  order = np.random.default_rng([seed, epoch]).permutation(size)
  return order[pos * batch_size:(pos + 1) * batch_size].astype(np.int32)


def eval_batches(size: int, batch_size: int):
  """Every example exactly once: the last batch is padded with index 0 and masked out."""
  for start in range(0, size, batch_size):
    idx = np.arange(start, min(start + batch_size, size), dtype=np.int32)
    mask = np.ones(batch_size, np.float32)
    mask[len(idx):] = 0.0
    yield np.pad(idx, (0, batch_size - len(idx))), mask


def normalize(images_uint8: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  return (images_uint8.astype(jnp.float32) / 255.0 - mean) / std


def augment(rng: jax.Array, images: jax.Array, crop_padding: int, flip: bool) -> jax.Array:
  """Random crop after zero padding, and random horizontal flip, per example, on device."""
  n, h, w, _ = images.shape
  crop_rng, flip_rng = jax.random.split(rng)
  if crop_padding:
    pad = crop_padding
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(crop_rng, (n, 2), 0, 2 * pad + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
    images = jax.vmap(crop)(padded, offsets)
  if flip:
    flips = jax.random.bernoulli(flip_rng, 0.5, (n, 1, 1, 1))
    images = jnp.where(flips, images[:, :, ::-1, :], images)
  return images


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """Normalization statistics and augmentation settings; hashable so jit can take it as static."""
  mean: tuple[float, ...]
  std: tuple[float, ...]
  crop_padding: int = 0
  flip: bool = False

  @classmethod
  def from_split(cls, split: Split, crop_padding: int, flip: bool) -> "Preprocess":
    x = split.images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std), crop_padding, flip)

  def __call__(self, images_uint8, rng=None):
    x = normalize(images_uint8, jnp.asarray(self.mean), jnp.asarray(self.std))
    if rng is not None and (self.crop_padding or self.flip):
      x = augment(rng, x, self.crop_padding, self.flip)
    return x


def gather(images: jax.Array, labels: jax.Array, idx: jax.Array, mesh: Mesh):
  """Images and labels of a batch of indices, sharded over the data axis (inside jit)."""
  return (jax.lax.with_sharding_constraint(images[idx], sharded(mesh)),
          jax.lax.with_sharding_constraint(labels[idx], sharded(mesh)))
