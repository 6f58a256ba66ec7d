"""Tests for compactkd_jax.feed (batches, augmentation) and supervised.evaluate, against brute force
and NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactkd_jax import feed, supervised
from compactkd_jax.errors import UserError
from compactkd_jax.models import get_model


def _device_split(small_dataset, size, shards):
  split = small_dataset.train.take(size)
  return split, feed.DeviceSplit.create(split, feed.make_mesh(), shards)


def _global_index(dsplit, block_idx):
  """Block-local indices (one process holds every shard here) -> indices into the host split."""
  starts = np.cumsum((0,) + dsplit.shard_sizes[:-1])
  shard, pos = np.divmod(block_idx, dsplit.capacity)
  return starts[shard] + pos


@pytest.mark.parametrize("size", [1, 7, 100, 1001])
@pytest.mark.parametrize("batch_size", [6, 12, 120])
@pytest.mark.parametrize("shards", [1, 2, 3])
def test_eval_batches_cover_every_example_once(small_dataset, size, batch_size, shards):
  split, dsplit = _device_split(small_dataset, size, shards)
  counts = np.zeros(size, int)
  batches = list(dsplit.eval_batches(batch_size))
  assert len(batches) == -(-max(dsplit.shard_sizes) // (batch_size // shards))
  images = np.asarray(dsplit.images)[:dsplit.shards_per_process * dsplit.capacity]
  for idx, mask in batches:
    assert idx.shape == mask.shape == (batch_size,)
    assert idx.dtype == np.int32
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.all((idx >= 0) & (idx < dsplit.shards_per_process * dsplit.capacity))
    real = idx[mask == 1.0]
    np.add.at(counts, _global_index(dsplit, real), 1)
    # The device block holds exactly the host images at those positions.
    np.testing.assert_array_equal(images[real], split.images[_global_index(dsplit, real)])
  np.testing.assert_array_equal(counts, np.ones(size, int))
  assert sum(int(m.sum()) for _, m in batches) == size


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_train_batches_take_equal_parts_of_every_shard(small_dataset, shards):
  split, dsplit = _device_split(small_dataset, 1000, shards)
  per_epoch = min(dsplit.shard_sizes) // (64 // shards)
  seen = np.concatenate([_global_index(dsplit, dsplit.train_batch(64, 3, s))
                         for s in range(per_epoch)])
  assert len(np.unique(seen)) == len(seen)  # no repeats within an epoch
  bounds = np.cumsum((0,) + dsplit.shard_sizes)
  for b in range(per_epoch):  # each batch: 64/shards examples of shard 0, then of shard 1, ...
    batch = seen[b * 64:(b + 1) * 64].reshape(shards, -1)
    for s in range(shards):
      assert np.all((batch[s] >= bounds[s]) & (batch[s] < bounds[s + 1]))
  if shards == 1:  # unsharded: the historical order of train_indices
    np.testing.assert_array_equal(dsplit.train_batch(64, 3, 5), feed.train_indices(1000, 64, 3, 5))


def test_shard_count_must_suit_batches_and_processes(small_dataset):
  _, dsplit = _device_split(small_dataset, 100, 3)
  with pytest.raises(UserError, match="divisible by config.data.shards"):
    dsplit.train_batch(64, 0, 0)
  with pytest.raises(UserError, match="larger than the training split"):
    dsplit.train_batch(300, 0, 0)
  with pytest.raises(UserError, match="shards=0"):
    _device_split(small_dataset, 100, 0)


@pytest.mark.parametrize("size,batch_size", [(100, 10), (103, 10), (64, 64), (1000, 128)])
def test_train_indices_permute_each_epoch(size, batch_size):
  per_epoch = size // batch_size
  for epoch in range(3):
    batches = [feed.train_indices(size, batch_size, seed=5, step=epoch * per_epoch + i)
               for i in range(per_epoch)]
    for b in batches:
      assert b.shape == (batch_size,) and b.dtype == np.int32
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == len(seen) == per_epoch * batch_size  # no repeats in an epoch
    assert np.all((seen >= 0) & (seen < size))
    if per_epoch * batch_size == size:
      np.testing.assert_array_equal(np.sort(seen), np.arange(size))
  # Epochs are shuffled differently.
  first = feed.train_indices(size, batch_size, 5, 0)
  next_epoch = feed.train_indices(size, batch_size, 5, per_epoch)
  assert not np.array_equal(first, next_epoch)


def test_train_indices_are_a_pure_function_of_seed_and_step():
  steps = [0, 3, 17, 250, 4]
  a = [feed.train_indices(1000, 32, 11, s) for s in steps]
  b = [feed.train_indices(1000, 32, 11, s) for s in reversed(steps)][::-1]
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(feed.train_indices(1000, 32, 11, 3),
                            feed.train_indices(1000, 32, 12, 3))


def test_train_indices_batch_larger_than_split_is_user_error():
  with pytest.raises(UserError, match="larger"):
    feed.train_indices(10, 32, 0, 0)


@pytest.fixture(scope="module")
def images(small_dataset):
  """64 real images as float32 NHWC (Fashion-MNIST is left-right asymmetric almost always)."""
  return jnp.asarray(small_dataset.train.images[:64], jnp.float32) / 255.0


def test_augment_without_crop_or_flip_is_identity(images):
  out = feed.augment(jax.random.key(0), images, crop_padding=0, flip=False)
  np.testing.assert_array_equal(out, images)


def test_augment_flip_flips_some_examples_exactly(images):
  x = np.asarray(images)
  out = np.asarray(feed.augment(jax.random.key(1), images, crop_padding=0, flip=True))
  flipped = x[:, :, ::-1, :]
  same = np.all(out == x, axis=(1, 2, 3))
  mirrored = np.all(out == flipped, axis=(1, 2, 3))
  symmetric = np.all(x == flipped, axis=(1, 2, 3))
  assert np.all(same | mirrored)  # every example is itself or its exact mirror image
  informative = ~symmetric
  assert informative.sum() >= 60
  frac = mirrored[informative].mean()
  assert 0.25 < frac < 0.75  # a fair coin per example, not per batch
  # The same key gives the same flips; another key gives others.
  again = np.asarray(feed.augment(jax.random.key(1), images, 0, True))
  np.testing.assert_array_equal(again, out)
  other = np.asarray(feed.augment(jax.random.key(2), images, 0, True))
  assert not np.array_equal(other, out)


def _crop_offsets(out: np.ndarray, x: np.ndarray, pad: int) -> list[tuple[int, int]]:
  """Every (dy, dx) at which `out` is the window of the zero-padded `x` (brute force)."""
  h, w, _ = x.shape
  padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
  return [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
          if np.array_equal(padded[dy:dy + h, dx:dx + w], out)]


@pytest.mark.parametrize("pad", [1, 2, 4])
def test_augment_crop_is_a_window_of_the_padded_image(images, pad):
  x = np.asarray(images)
  out = np.asarray(feed.augment(jax.random.key(3), images, crop_padding=pad, flip=False))
  assert out.shape == x.shape
  offsets = []
  for i in range(len(x)):
    found = _crop_offsets(out[i], x[i], pad)
    assert found, f"example {i} is not a window of its padded image"
    offsets.append(found[0])
  # The offsets are drawn per example over the whole (2p+1)^2 range.
  assert len(set(offsets)) > min(10, (2 * pad + 1) ** 2 // 2)
  assert {o[0] for o in offsets} == set(range(2 * pad + 1))


def test_augment_crop_and_flip(images):
  x = np.asarray(images)
  out = np.asarray(feed.augment(jax.random.key(4), images, crop_padding=2, flip=True))
  for i in range(len(x)):
    assert _crop_offsets(out[i], x[i], 2) or _crop_offsets(out[i][:, ::-1], x[i], 2)


def test_preprocess_normalizes_with_split_statistics(small_dataset):
  pre = feed.Preprocess.from_split(small_dataset.train, 0, False)
  pixels = small_dataset.train.images.astype(np.float64) / 255.0
  assert pre.mean[0] == pytest.approx(pixels.mean(), rel=1e-6)
  assert pre.std[0] == pytest.approx(pixels.std(), rel=1e-6)
  out = np.asarray(pre(jnp.asarray(small_dataset.train.images[:100])))
  expected = (pixels[:100] - pixels.mean()) / pixels.std()
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  # Without an rng no augmentation is applied even when configured.
  aug = feed.Preprocess.from_split(small_dataset.train, 4, True)
  np.testing.assert_allclose(np.asarray(aug(jnp.asarray(small_dataset.train.images[:100]))),
                             expected, rtol=1e-5, atol=1e-5)


def _numpy_log_softmax(logits):
  z = logits - logits.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def probe_net(small_dataset):
  net = get_model("resnet20", 10, width=0.25)
  return net, _trained_like_variables(net, small_dataset)


@pytest.mark.parametrize("batch_size,shards", [(128, 1), (1000, 1), (120, 3)])
def test_evaluate_matches_numpy(small_dataset, probe_net, batch_size, shards):
  split = small_dataset.validation  # 500 examples: 128 leaves a padded, masked last batch
  net, variables = probe_net
  mesh = feed.make_mesh()
  pre = feed.Preprocess.from_split(small_dataset.train, 2, True)
  result = supervised.evaluate(net, variables, feed.DeviceSplit.create(split, mesh, shards), pre,
                               mesh, batch_size)
  # Batch-free reference: every example in one forward pass, argmax and CE in NumPy (float64).
  logits = np.asarray(jax.jit(net.apply)(variables, pre(jnp.asarray(split.images)))[0], np.float64)
  predictions = logits.argmax(-1)
  assert result["examples"] == len(split)
  assert result["accuracy"] == pytest.approx(np.mean(predictions == split.labels), abs=1e-9)
  nll = -_numpy_log_softmax(logits)[np.arange(len(split)), split.labels]
  assert result["loss"] == pytest.approx(nll.mean(), rel=1e-4)
  # A non-degenerate check: a real classifier, not a constant predictor.
  assert len(np.unique(predictions)) >= 8 and result["accuracy"] > 0.3


def _trained_like_variables(net, dataset):
  """Random He-scaled conv weights and a least-squares linear probe as the classifier, fitted on
  real training images: cheap, and its predictions are far from constant."""
  x = jax.ShapeDtypeStruct((1, *dataset.image_shape), jnp.float32)
  abstract = jax.eval_shape(net.init, jax.random.key(0), x)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      return jnp.asarray(rng.normal(0, np.sqrt(2.0 / np.prod(leaf.shape[:-1])), leaf.shape),
                         jnp.float32)
    if name.endswith("['var']") or name.endswith("['scale']"):
      return jnp.asarray(rng.uniform(0.8, 1.2, leaf.shape), jnp.float32)
    return jnp.asarray(rng.normal(0, 0.1, leaf.shape), jnp.float32)

  variables = jax.tree_util.tree_map_with_path(fill, abstract)
  pre = feed.Preprocess.from_split(dataset.train, 0, False)
  train = dataset.train.take(1000)
  _, feats = jax.jit(net.apply)(variables, pre(jnp.asarray(train.images)))
  pooled = np.asarray(feats[net.block_names[-1]], np.float64).mean(axis=(1, 2))
  design = np.concatenate([pooled, np.ones((len(pooled), 1))], axis=1)
  targets = np.eye(dataset.num_classes)[train.labels]
  coef = np.linalg.lstsq(design, targets, rcond=None)[0]
  head = variables["params"][net.head.name]["classifier"]
  head["kernel"] = jnp.asarray(coef[:-1], jnp.float32)
  head["bias"] = jnp.asarray(coef[-1], jnp.float32)
  return variables
