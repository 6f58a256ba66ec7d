"""Supervised training: the classification step (cross-entropy with optional Hinton KD and feature
hints from a frozen teacher), masked evaluation that counts every example exactly once, and the
runner that trains a network with them through the one loop and saves it. Used by the teacher,
fine-tune and baseline phases.
"""
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from compactkd_jax import artifacts, feed, seeds, train
from compactkd_jax import precision as precision_lib
from compactkd_jax.context import RunContext
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


def supervised_step(ctx: RunContext, net: BlockNet, tcfg, stream: str, teacher_net=None,
                    teacher_vars=None, kd=None):
  """(step_fn, batch_fn) of CE (and KD when `kd` is given) training of `net` for the one loop; the
  batch order and augmentation come from the named random stream `stream` (seeds.py)."""
  seed = seeds.of(ctx.cfg.seed, stream)
  train_split = ctx.splits["train"]
  step = make_classify_step(
      net, ctx.preprocess, ctx.mesh, jax.random.key(seed), train_split.images, train_split.labels,
      teacher_net=teacher_net, teacher_vars=teacher_vars,
      kd_temperature=kd.temperature if kd else 1.0, kd_alpha=kd.alpha if kd else 0.0,
      hint_beta=kd.get("hints", 0.0) if kd else 0.0, precision=tcfg.precision)
  batch_fn = lambda s: feed.put_global(train_split.train_batch(tcfg.batch_size, seed, s),
                                       feed.sharded(ctx.mesh))
  return step, batch_fn


def run_supervised(ctx: RunContext, name: str, net: BlockNet, state, tcfg, total: int,
                   section: str, stream: str, teacher_net=None, teacher_vars=None, kd=None,
                   prior: train.PriorWork | None = None):
  """Trains `net` from `state` for `total` steps through the one loop (resumable, checkpoints in
  `ctx.checkpoint_dir(name)`); `section` names the config section in hints."""
  step, batch_fn = supervised_step(ctx, net, tcfg, stream, teacher_net, teacher_vars, kd)
  eval_fn = lambda st: evaluate(net, variables_of(st), ctx.splits["validation"], ctx.preprocess,
                                ctx.mesh, ctx.cfg.data.eval_batch_size)
  loop = train.LoopConfig(name=name, total_steps=total, step_fn=step, batch_fn=batch_fn,
                          checkpoint_dir=ctx.checkpoint_dir(name), log_every=tcfg.log_every_steps,
                          checkpoint_every=tcfg.checkpoint_every_steps,
                          eval_every=tcfg.eval_every_steps, eval_fn=eval_fn,
                          lr_hint=f"config.{section}.train.learning_rate", writer=ctx.writer,
                          prior=prior)
  return train.run_loop(loop, state)


def train_and_save(ctx: RunContext, folder: str, net: BlockNet, variables: dict, section: str,
                   stream: str, teacher_net=None, teacher_vars=None, kd=None,
                   total: int | None = None, extra: dict | None = None) -> dict:
  """Trains `net` from `variables` with config `<section>.train` (for `total` steps, default its
  epochs), saves it to `<workdir>/<folder>/`; returns steps, images, epochs, validation and test
  accuracy and the wall time (with that of earlier processes, when it resumed)."""
  start, prior = time.perf_counter(), train.PriorWork()
  tcfg = ctx.cfg[section].train
  feed.check_batch_size(tcfg.batch_size, ctx.mesh, f"config.{section}.train.batch_size")
  total = total or train.num_steps(tcfg, ctx.splits["train"].size)
  state = feed.replicate(train.create_state(variables, tcfg, total), ctx.mesh)
  state = run_supervised(ctx, folder, net, state, tcfg, total, section, stream, teacher_net,
                         teacher_vars, kd, prior)
  final = variables_of(state)
  artifacts.save_model(ctx.path(folder), net, final, ctx.dataset.image_shape,
                       ctx.dataset.num_classes, ctx.preprocess, extra)
  ev = lambda split: evaluate(net, final, ctx.splits[split], ctx.preprocess, ctx.mesh,
                              ctx.cfg.data.eval_batch_size)["accuracy"]
  return {"steps": total, "images": total * tcfg.batch_size,
          "epochs": total * tcfg.batch_size / ctx.splits["train"].size,
          "val_accuracy": ev("validation"), "test_accuracy": ev("test"),
          "train_seconds": time.perf_counter() - start + prior.seconds,
          "resumed_seconds": prior.seconds}
