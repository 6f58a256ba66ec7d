"""bf16 mixed precision (compactkd_jax/precision.py): on the committed trained teacher and real
images, one teacher (CE), distillation and KD fine-tune step in bf16 gives the float32 step's loss
within 2% and an update pointing the same way (cosine > 0.95); parameters, optimizer state and BN
statistics stay float32; and the compiled bf16 step really convolves in bfloat16."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactkd_jax import artifacts, config as config_lib, blockwise as distill, feed, supervised, train
from conftest import REPO_ROOT

TEACHER = os.path.join(REPO_ROOT, "teachers", "fashion_mnist_resnet20_w0.5")
BATCH = 64


@pytest.fixture(scope="module")
def setup(small_dataset):
  net, variables, spec = artifacts.load_model(TEACHER)
  mesh = feed.make_mesh()
  tr = feed.DeviceSplit.create(small_dataset.train, mesh)
  pre = artifacts.preprocess_of(spec)
  idx = feed.put_global(tr.train_batch(BATCH, 0, 0), feed.sharded(mesh))
  return net, jax.device_put(variables, feed.replicated(mesh)), mesh, tr, pre, idx


def _tcfg(precision):
  t = config_lib.train_defaults(epochs=1, learning_rate=0.05)
  t.precision = precision
  return t


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(tree)])


def _compare(make_step, variables, precision_metric="loss"):
  """Loss and parameter update of one step in f32 and in bf16, from the same state."""
  out = {}
  for precision in ("f32", "bf16"):
    state = train.create_state(jax.tree.map(jnp.array, variables), _tcfg(precision), 10)
    before = _flat(state.params)
    new, metrics = make_step(precision)(state, precision)
    out[precision] = (float(metrics[precision_metric]), _flat(new.params) - before, new)
  (l32, d32, _), (l16, d16, new16) = out["f32"], out["bf16"]
  assert abs(l16 - l32) <= 0.02 * abs(l32), (l32, l16)
  cosine = d32 @ d16 / (np.linalg.norm(d32) * np.linalg.norm(d16))
  assert cosine > 0.95, cosine  # bf16 keeps ~3 significant digits of every activation
  for tree in (new16.params, new16.batch_stats, new16.opt_state):
    assert {str(v.dtype) for v in jax.tree.leaves(tree) if hasattr(v, "dtype") and
            jnp.issubdtype(v.dtype, jnp.floating)} <= {"float32"}
  return l32, l16


def test_teacher_and_finetune_steps(setup):
  net, variables, mesh, tr, pre, idx = setup
  student = net.with_blocks({b.name: b.replace(width_ratio=0.5) for b in net.blocks[3:6]})
  student_vars = supervised.init_variables(student, (28, 28, 1), 0)
  for model, init, kd in ((net, variables, {}), (student, student_vars, {
      "teacher_net": net, "teacher_vars": variables, "kd_temperature": 4.0, "kd_alpha": 0.9})):
    def make_step(precision, model=model, kd=kd):
      step = supervised.make_classify_step(model, pre, mesh, jax.random.key(0), tr.images,
                                           tr.labels, precision=precision, **kd)
      return lambda state, _: step(state, idx)
    _compare(make_step, {"params": init["params"], "batch_stats": init["batch_stats"]})


def test_distill_step(setup):
  net, variables, mesh, tr, pre, idx = setup
  plan = distill.distill_setup(net, (28, 28, 1), ("keep", "slim_0.5", "skip"))
  init = distill.init_candidates(plan, 0)

  def make_step(precision):
    step = distill.make_distill_step(plan, pre, mesh, jax.random.key(0), tr.images, tr.labels,
                                     variables, precision=precision)
    return lambda state, _: step(state, idx)
  _compare(make_step, init)


def test_bf16_step_convolves_in_bfloat16(setup):
  net, variables, mesh, tr, pre, idx = setup
  state = train.create_state(variables, _tcfg("bf16"), 10)
  text = str(jax.make_jaxpr(lambda s, i: supervised.classify_step(
      s, i, jax.random.key(0), tr.images, tr.labels, None, net=net, teacher_net=None,
      preprocess=pre, mesh=mesh, precision="bf16"))(state, idx))
  convs = [line for line in text.splitlines() if "conv_general_dilated" in line]
  assert convs and all("bf16[" in line for line in convs), convs[:3]
