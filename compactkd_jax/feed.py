"""Feeding the devices: one mesh of all devices, datasets resident on device, batches as sharded
index vectors, normalization and augmentation inside jit.

A batch is a vector of example indices sharded over the mesh's data axis; the jit-compiled step
gathers the images itself, so no image crosses the host-device boundary after start-up. Splits are
cut into `config.data.shards` shards and each process holds only its own (DeviceSplit). The index
stream is a pure function of (seed, step), which makes resume exact: the iterator position is the
step number stored in the checkpoint.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from compactkd_jax.errors import UserError

DATA_AXIS = "data"


def make_mesh() -> Mesh:
  """All devices of all processes on one data axis, grouped by process (a process's devices hold
  its data shards); parameters are replicated over it."""
  devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  return Mesh(np.asarray(devices), (DATA_AXIS,))


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
  """A split living on the devices, cut into `num_shards` contiguous shards.

  Each process holds only its own shards (shards p*S/P .. (p+1)*S/P - 1 of S, for process p of P),
  and each of its devices holds all of them as one block, each shard padded to `capacity`. A batch
  takes batch_size/S examples from every shard, in shard order, so a device only ever needs its
  own process's block: gathering is local, and the batches (hence the results) depend on the
  number of shards, never on the number of devices or processes.
  """
  images: jax.Array  # [devices * shards_per_process * capacity, ...], sharded over the data axis
  labels: jax.Array
  shard_sizes: tuple[int, ...]  # real examples of every shard, all processes
  capacity: int
  shards_per_process: int

  @classmethod
  def create(cls, split, mesh: Mesh, num_shards: int = 1) -> "DeviceSplit":
    processes = jax.process_count()
    if num_shards < 1 or num_shards % processes:
      raise UserError(f"config.data.shards={num_shards} must be a positive multiple of the number "
                      f"of processes ({processes})")
    bounds = [i * len(split) // num_shards for i in range(num_shards + 1)]
    sizes = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    capacity, per_process = max(sizes), num_shards // processes
    first = jax.process_index() * per_process
    block_images = np.zeros((per_process * capacity, *split.images.shape[1:]), split.images.dtype)
    block_labels = np.zeros((per_process * capacity,), split.labels.dtype)
    for j in range(per_process):  # this process's shards only
      lo, hi = bounds[first + j], bounds[first + j + 1]
      block_images[j * capacity:j * capacity + hi - lo] = split.images[lo:hi]
      block_labels[j * capacity:j * capacity + hi - lo] = split.labels[lo:hi]
    put = lambda block: jax.make_array_from_callback(
        (mesh.size * len(block), *block.shape[1:]), sharded(mesh), lambda _: block)
    return cls(put(block_images), put(block_labels), sizes, capacity, per_process)

  @property
  def size(self) -> int:
    return sum(self.shard_sizes)

  @property
  def num_shards(self) -> int:
    return len(self.shard_sizes)

  def limit(self, n: int) -> "DeviceSplit":
    """The first n/shards examples of every shard (the first n examples when unsharded)."""
    per_shard = max(1, n // self.num_shards)
    return dataclasses.replace(self, shard_sizes=tuple(min(s, per_shard) for s in self.shard_sizes))

  def _local(self, shard: int, positions: np.ndarray) -> np.ndarray:
    """Positions within a shard -> indices into its process's block on the device."""
    return ((shard % self.shards_per_process) * self.capacity + positions).astype(np.int32)

  def train_batch(self, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Block-local indices of training batch `step`: batch_size/shards from every shard."""
    per_shard = _per_shard(batch_size, self.num_shards, "batch size")
    per_epoch = min(self.shard_sizes) // per_shard
    if per_epoch == 0:
      raise UserError(f"batch size {batch_size} is larger than the training split "
                      f"({self.size} examples in {self.num_shards} shard(s))")
    return np.concatenate([
        self._local(s, train_indices(size, per_shard, seed, step, per_epoch,
                                     shard=None if self.num_shards == 1 else s))
        for s, size in enumerate(self.shard_sizes)])

  def eval_batches(self, batch_size: int):
    """Every example exactly once: (block-local indices, mask), the padding masked out."""
    per_shard = _per_shard(batch_size, self.num_shards, "eval batch size")
    for start in range(0, max(self.shard_sizes), per_shard):
      parts = [_eval_slice(start, per_shard, size) for size in self.shard_sizes]
      yield (np.concatenate([self._local(s, idx) for s, (idx, _) in enumerate(parts)]),
             np.concatenate([mask for _, mask in parts]))


def _per_shard(batch_size: int, num_shards: int, what: str) -> int:
  if batch_size % num_shards:
    raise UserError(f"the {what} ({batch_size}) must be divisible by config.data.shards "
                    f"({num_shards})")
  return batch_size // num_shards


def _eval_slice(start: int, length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Positions start..start+length of a shard of `size` examples; past its end: index 0, mask 0."""
  idx = np.arange(start, start + length)
  mask = (idx < size).astype(np.float32)
  return np.where(idx < size, idx, 0), mask


def check_batch_size(batch_size: int, mesh: Mesh, what: str, shards: int = 1) -> None:
  if batch_size % mesh.size:
    raise UserError(f"{what}={batch_size} must be divisible by the number of devices ({mesh.size})")
  if batch_size % shards:
    raise UserError(f"{what}={batch_size} must be divisible by the number of data shards "
                    f"({shards}, config.data.shards; 0 means one per process)")


def train_indices(size: int, batch_size: int, seed: int, step: int, per_epoch: int | None = None,
                  shard: int | None = None) -> np.ndarray:
  """Positions of training batch `step` in a split (or shard) of `size` examples: a fresh
  permutation per epoch, the rest of an epoch dropped. An unsharded split keys the permutation by
  (seed, epoch) only, so its batches are the same as before sharding existed."""
  per_epoch = size // batch_size if per_epoch is None else per_epoch
  if per_epoch == 0:
    raise UserError(f"batch size {batch_size} is larger than the training split ({size})")
  epoch, pos = divmod(step, per_epoch)
  key = [seed, epoch] if shard is None else [seed, epoch, shard]
  order = np.random.default_rng(key).permutation(size)
  return order[pos * batch_size:(pos + 1) * batch_size].astype(np.int32)


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
  def from_split(cls, split, crop_padding: int, flip: bool) -> "Preprocess":
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
  """Images and labels of a batch of block-local indices (DeviceSplit.train_batch), sharded over
  the data axis (inside jit). Every device gathers from its own block: no data crosses devices."""
  local = lambda im, lb, i: (im[i], lb[i])
  spec = P(DATA_AXIS)
  return jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=(spec, spec))(
      images, labels, idx)
