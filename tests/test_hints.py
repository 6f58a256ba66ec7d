"""Feature hints in the fine-tune: the term equals a NumPy computation from the two networks'
block outputs, and the step's loss grows by exactly beta times it."""
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from compactkd_jax import feed, supervised, train
from compactkd_jax.models import get_model


def _np_nmse(p, t):
  p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
  return np.mean((p - t) ** 2) / (np.mean(t ** 2) + 1e-8)


def test_feature_hints_match_numpy():
  rng = np.random.default_rng(0)
  blocks = ("a", "b", "c")
  s = {b: rng.normal(size=(2, 5, 5, 4)).astype(np.float32) for b in blocks}
  t = {b: rng.normal(size=(2, 5, 5, 4)).astype(np.float32) * (i + 1) for i, b in enumerate(blocks)}
  expected = np.mean([_np_nmse(s[b], t[b]) for b in blocks])
  got = supervised.feature_hints({k: jnp.asarray(v) for k, v in s.items()},
                                 {k: jnp.asarray(v) for k, v in t.items()}, blocks)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_step_loss_adds_beta_times_the_hints(small_dataset):
  mesh = feed.make_mesh()
  teacher = get_model("resnet20", 10, width=0.25)
  student = teacher  # the same architecture, other weights: the block outputs differ
  preprocess = feed.Preprocess.from_split(small_dataset.train, 0, False)
  split = feed.DeviceSplit.create(small_dataset.train, mesh)
  x = np.zeros((1, *small_dataset.image_shape), np.float32)
  t_vars = jax.jit(teacher.init)(jax.random.key(1), x)
  s_vars = jax.jit(student.init)(jax.random.key(2), x)
  idx = feed.put_global(np.arange(16, dtype=np.int32), feed.sharded(mesh))
  losses = {}
  for beta in (0.0, 2.0):
    step = supervised.make_classify_step(student, preprocess, mesh, jax.random.key(0),
                                         split.images, split.labels, teacher_net=teacher,
                                         teacher_vars=t_vars, kd_temperature=4.0, kd_alpha=0.5,
                                         hint_beta=beta)
    tcfg = ConfigDict(dict(learning_rate=0.0, momentum=0.9, nesterov=True, weight_decay=0.0,
                           warmup_steps=0))
    state = train.create_state(jax.tree.map(jnp.copy, s_vars), tcfg, 10)
    _, metrics = step(state, idx)
    losses[beta] = float(metrics["loss"])
  # The hints from the two networks' block outputs on the same (unaugmented) batch: the student in
  # training mode (batch statistics), the teacher in inference mode, as in the step.
  images = preprocess(jnp.asarray(small_dataset.train.images[:16]), jax.random.key(0))
  _, t_feats = teacher.apply(t_vars, images)
  (_, s_feats), _ = student.apply(s_vars, images, train=True, mutable=["batch_stats"])
  hints = np.mean([_np_nmse(s_feats[b], t_feats[b]) for b in teacher.block_names])
  assert hints > 0.1  # two random networks: the term is not negligible
  np.testing.assert_allclose(losses[2.0] - losses[0.0], 2.0 * hints, rtol=2e-4)
