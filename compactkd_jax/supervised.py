"""Classification steps: cross-entropy with optional Hinton KD from a frozen teacher, and masked
evaluation that counts every example exactly once. Used by the teacher, fine-tune and baselines.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from compactkd_jax import feed
from compactkd_jax import precision as precision_lib
from compactkd_jax.losses import cross_entropy, hinton_kd, normalized_mse
from compactkd_jax.models.net import BlockNet


def classify_step(state, idx, key, images, labels, teacher_vars, *, net: BlockNet,
                  teacher_net: BlockNet | None, preprocess: feed.Preprocess, mesh,
                  kd_temperature: float = 1.0, kd_alpha: float = 0.0, hint_beta: float = 0.0,
                  precision: str = "f32"):
  """One SGD step on (1 - alpha) * CE + alpha * KD (+ beta * feature hints). Pure; teacher_vars is
  an argument (a closed-over array would be baked into the program as a constant) and never
  receives gradients. Hints: the normalized MSE between the student's and the teacher's output of
  every block, averaged over blocks (the student keeps the teacher's block boundaries and shapes,
  so no adapters are needed; the teacher pass of the KD term serves them). `precision`: the
  compute dtype of both networks' passes (precision.py); losses are float32."""
  # Fold the step into the key so the augmentation and dropout stream is a function of the step,
  # identical after a resume.
  aug_rng, drop_rng = jax.random.split(jax.random.fold_in(key, state.step))
  x, y = feed.gather(images, labels, idx, mesh)
  x = precision_lib.cast(preprocess(x, aug_rng), precision)
  teacher_logits = teacher_feats = None
  if teacher_net is not None and (kd_alpha > 0 or hint_beta > 0):
    # Teacher BN in inference mode; stop_gradient keeps it out of the backward pass entirely.
    teacher_logits, teacher_feats = jax.lax.stop_gradient(
        teacher_net.apply(precision_lib.cast_params(teacher_vars, precision), x))

  def loss_fn(params):
    params = precision_lib.cast(params, precision)
    (logits, feats), updates = net.apply({"params": params, "batch_stats": state.batch_stats}, x,
                                         train=True, mutable=["batch_stats"],
                                         rngs={"dropout": drop_rng})
    ce = cross_entropy(logits, y)
    loss = ce
    if teacher_logits is not None and kd_alpha > 0:
      loss = (1.0 - kd_alpha) * ce + kd_alpha * hinton_kd(logits, teacher_logits, kd_temperature)
    if teacher_feats is not None and hint_beta > 0:
      loss = loss + hint_beta * feature_hints(feats, teacher_feats, net.block_names)
    return loss, (logits, updates["batch_stats"], ce)

  (loss, (logits, batch_stats, ce)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  accuracy = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
  return state, {"loss": loss, "ce": ce, "accuracy": accuracy}


def feature_hints(student_feats: dict, teacher_feats: dict, blocks) -> jax.Array:
  """Mean over the blocks of the normalized MSE between student and teacher block outputs."""
  return sum(normalized_mse(student_feats[b], teacher_feats[b]) for b in blocks) / len(blocks)


def make_classify_step(net, preprocess, mesh, key, images, labels, teacher_net=None,
                       teacher_vars=None, kd_temperature=1.0, kd_alpha=0.0, hint_beta=0.0,
                       precision="f32"):
  """The jit-compiled step with everything but (state, indices) bound; the state is donated."""
  jitted = jax.jit(functools.partial(classify_step, net=net, teacher_net=teacher_net,
                                     preprocess=preprocess, mesh=mesh,
                                     kd_temperature=kd_temperature, kd_alpha=kd_alpha,
                                     hint_beta=hint_beta, precision=precision),
                   donate_argnums=0)
  return lambda state, idx: jitted(state, idx, key, images, labels, teacher_vars)


@functools.partial(jax.jit, static_argnames=("net", "preprocess", "mesh"))
def _eval_batch(variables, idx, mask, images, labels, *, net, preprocess, mesh):
  x, y = feed.gather(images, labels, idx, mesh)
  logits, _ = net.apply(variables, preprocess(x))
  correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32) * mask
  return jnp.sum(correct), jnp.sum(mask), cross_entropy(logits, y, mask) * jnp.sum(mask)


def evaluate(net: BlockNet, variables, split: feed.DeviceSplit, preprocess, mesh,
             batch_size: int) -> dict:
  """Accuracy and loss over every example of the split exactly once (padded, masked)."""
  correct = count = loss = 0.0
  for idx, mask in split.eval_batches(batch_size):
    c, n, l = _eval_batch(variables, feed.put_global(idx, feed.sharded(mesh)),
                          feed.put_global(mask, feed.sharded(mesh)), split.images, split.labels,
                          net=net, preprocess=preprocess, mesh=mesh)
    correct, count, loss = correct + float(c), count + float(n), loss + float(l)
  return {"accuracy": correct / count, "loss": loss / count, "examples": int(count)}


def variables_of(state) -> dict:
  return {"params": state.params, "batch_stats": state.batch_stats}


def init_variables(net: BlockNet, image_shape, seed: int) -> dict:
  # One compiled init instead of hundreds of tiny op-by-op random programs (seconds on CPU).
  variables = jax.jit(net.init)(jax.random.key(seed), np.zeros((1, *image_shape), np.float32))
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
