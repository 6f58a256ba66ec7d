"""Block-wise distillation (design stage 3): every candidate of block b learns to map the teacher's
input of block b to the teacher's output of block b, under the normalized MSE.

- parallel: ONE jit-compiled step runs the teacher once and trains every candidate of every block.
- sequential: the outer Python loop walks the blocks; per block, a jit-compiled step runs the
  teacher up to that block and trains only its candidates.
The losses are independent and the optimizer is elementwise, so both give the same parameters.
Candidate trees are keyed `{block: {candidate: ...}}`; `keep` is the teacher block itself and is
never trained.
"""
import dataclasses
import functools
import zlib

import jax
import jax.numpy as jnp

from compactkd_jax import compile_options, cost, feed, inherit, seeds, train
from compactkd_jax import precision as precision_lib
from compactkd_jax.losses import normalized_mse
from compactkd_jax.models import candidates as candidates_lib
from compactkd_jax.models.net import BlockNet, LayerSpec

Menus = tuple[tuple[str, tuple[tuple[str, LayerSpec], ...]], ...]  # hashable: jit static


@dataclasses.dataclass(frozen=True)
class DistillSetup:
  """Everything static about the distillation of one teacher: block order, shapes, menus."""
  teacher: BlockNet
  in_shapes: tuple[tuple[str, tuple[int, ...]], ...]
  menus: Menus  # trainable candidates only (no keep, nothing without parameters)
  all_menus: Menus  # keep and skip included, for scoring

  def in_shape(self, block: str) -> tuple[int, ...]:
    return dict(self.in_shapes)[block]

  def prev(self, block: str) -> str:
    names = (self.teacher.stem.name, *self.teacher.block_names)
    return names[names.index(block) - 1]

  def only(self, block: str) -> "DistillSetup":
    return dataclasses.replace(self, menus=tuple(m for m in self.menus if m[0] == block))


def menu(spec: LayerSpec, in_shape, out_shape, names) -> dict[str, LayerSpec]:
  """The candidates of a block (candidates.menu) less those that save neither MACs nor
  parameters: dominated by keep, a noisy score could still make selection pick one and grow the
  student, and training it only wastes time."""
  keep_macs, keep_params = cost.spec_macs_params(spec, in_shape)
  out = {}
  for name, cand in candidates_lib.menu(spec, in_shape, out_shape, names).items():
    macs, params = cost.spec_macs_params(cand, in_shape)  # cached: scoring reads them again
    if name == "keep" or macs < keep_macs or params < keep_params:
      out[name] = cand
  return out


def distill_setup(teacher: BlockNet, image_shape, names) -> DistillSetup:
  ins = cost.block_input_shapes(teacher, image_shape)
  outs = cost.feature_shapes(teacher, image_shape)
  full, trainable = [], []
  for b in teacher.blocks:
    m = menu(b, ins[b.name], outs[b.name], names)
    full.append((b.name, tuple(sorted(m.items()))))
    cands = tuple((c, s) for c, s in sorted(m.items())
                  if c != "keep" and _has_params(s, ins[b.name]))
    if cands:
      trainable.append((b.name, cands))
  return DistillSetup(teacher, tuple((b, ins[b]) for b in teacher.block_names), tuple(trainable),
                   tuple(full))


def _has_params(spec: LayerSpec, in_shape) -> bool:
  shapes = jax.eval_shape(spec.build().init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, *in_shape), jnp.float32))
  return bool(jax.tree.leaves(shapes.get("params", {})))


def init_candidates(setup: DistillSetup, seed: int) -> dict:
  """{"params": {b: {c: ...}}, "batch_stats": {b: {c: ...}}}; each candidate's key depends only on
  (seed, block, candidate), so both schedules start from the same weights."""

  def init_all():
    params, stats = {}, {}
    for b, cands in setup.menus:
      for c, spec in cands:
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _stable_id(b)),
                                 _stable_id(c))
        v = spec.build().init(key, jnp.zeros((1, *setup.in_shape(b)), jnp.float32))
        params.setdefault(b, {})[c] = v["params"]
        stats.setdefault(b, {})[c] = v.get("batch_stats", {})
    return {"params": params, "batch_stats": stats}

  # One compiled program for every candidate: a jit per candidate cost ~1 s of compilation each
  # (30 s of the quickstart's distillation), eager init is slower still on CPU.
  return jax.jit(init_all, compiler_options=compile_options.run_once())()


def _stable_id(name: str) -> int:
  """A hash of a name that does not change between processes (Python's hash() does)."""
  return zlib.crc32(name.encode()) & 0x7FFFFFFF


def teacher_features(teacher: BlockNet, teacher_vars, x, last: str | None = None):
  """The teacher's feature maps (inference-mode BN), cut off from the gradient."""
  _, feats = teacher.apply(teacher_vars, x, last=last)
  return jax.lax.stop_gradient(feats)


def candidate_losses(params, batch_stats, feats, setup: DistillSetup, train_mode: bool,
                     precision: str = "f32"):
  """{(b, c): normalized MSE} and the updated BN statistics of every candidate in setup.menus."""
  losses, new_stats = {}, {}
  for b, cands in setup.menus:
    x_in, target = feats[setup.prev(b)], feats[b]
    for c, spec in cands:
      variables = {"params": precision_lib.cast(params[b][c], precision),
                   "batch_stats": batch_stats[b][c]}
      if train_mode:
        out, upd = spec.build().apply(variables, x_in, train=True, mutable=["batch_stats"])
        new_stats.setdefault(b, {})[c] = upd.get("batch_stats", {})
      else:
        out = spec.build().apply(variables, x_in)
      losses[(b, c)] = normalized_mse(out, target)
  return losses, new_stats


def distill_step(state, idx, key, images, labels, teacher_vars, *, setup: DistillSetup, preprocess,
                 mesh, last_block: str | None, precision: str = "f32"):
  """One step for every candidate in setup.menus. The teacher runs once, up to `last_block` (the
  whole network in the parallel schedule), inference-mode BN, under stop_gradient; teacher_vars is
  a non-donated argument (closed over, it would be baked into the program as a constant)."""
  x, _ = feed.gather(images, labels, idx, mesh)
  x = precision_lib.cast(preprocess(x, jax.random.fold_in(key, state.step)), precision)
  feats = teacher_features(setup.teacher, precision_lib.cast_params(teacher_vars, precision), x,
                           last=last_block)

  def loss_fn(params):
    losses, new_stats = candidate_losses(params, state.batch_stats, feats, setup, train_mode=True,
                                         precision=precision)
    # The sum's gradient w.r.t. one candidate is that candidate's own gradient: independent losses.
    return sum(losses.values()), (losses, new_stats)

  (total, (losses, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=new_stats)
  metrics = {f"{b}/{c}": l for (b, c), l in losses.items()}
  metrics["loss"] = total / len(losses)
  return state, metrics


def make_distill_step(setup: DistillSetup, preprocess, mesh, key, images, labels, teacher_vars,
                      last_block=None, precision="f32"):
  jitted = jax.jit(functools.partial(distill_step, setup=setup, preprocess=preprocess, mesh=mesh,
                                     last_block=last_block, precision=precision),
                   donate_argnums=0)
  return lambda state, idx: jitted(state, idx, key, images, labels, teacher_vars)


def split_state_variables(variables: dict, block: str) -> dict:
  return {k: {block: v[block]} for k, v in variables.items()}


def run_schedule(ctx, setup: DistillSetup, teacher_vars, tcfg, schedule: str,
                 prior: train.PriorWork | None = None) -> dict:
  """Trains every candidate through the one loop; returns the candidate variables tree. `prior`
  collects the seconds of earlier processes when a loop resumed."""
  if not any(menu for _, menu in setup.menus):
    return {"params": {}, "batch_stats": {}}  # a menu of keep and skip only: nothing to train
  total = train.num_steps(tcfg, ctx.splits["train"].size)
  variables = init_candidates(setup, seeds.of(ctx.cfg.seed, seeds.DISTILL_INIT))
  if ctx.cfg.distill.inherit:  # narrower candidates start from the teacher's strongest channels
    variables = inherit.from_teacher(variables, setup.menus,
                                     {b.name: b for b in setup.teacher.blocks}, teacher_vars)
  seed = seeds.of(ctx.cfg.seed, seeds.DISTILL_TRAIN)
  key = jax.random.key(seed)
  tr = ctx.splits["train"]
  batch_fn = lambda s: feed.put_global(tr.train_batch(tcfg.batch_size, seed, s),
                                       feed.sharded(ctx.mesh))
  groups = ([(None, setup)] if schedule == "parallel"
            else [(b, setup.only(b)) for b, _ in setup.menus])
  out = {"params": {}, "batch_stats": {}}
  for block, sub in groups:
    sub_vars = variables if block is None else split_state_variables(variables, block)
    state = feed.replicate(train.create_state(sub_vars, tcfg, total), ctx.mesh)
    # The teacher runs only as deep as needed: to the last block (parallel) or to `block`.
    step = make_distill_step(sub, ctx.preprocess, ctx.mesh, key, tr.images, tr.labels,
                             teacher_vars, last_block=block or setup.teacher.block_names[-1],
                             precision=tcfg.precision)
    name = "distill" if block is None else f"distill_{block}"
    loop = train.LoopConfig(name=name, total_steps=total, step_fn=step, batch_fn=batch_fn,
                            checkpoint_dir=ctx.checkpoint_dir(name),
                            log_every=tcfg.log_every_steps,
                            checkpoint_every=tcfg.checkpoint_every_steps,
                            lr_hint="config.distill.train.learning_rate", writer=ctx.writer,
                            prior=prior)
    state = train.run_loop(loop, state)
    out["params"].update(state.params)
    out["batch_stats"].update(state.batch_stats)
  return out
