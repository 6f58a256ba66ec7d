"""The refine phase, progressive refinement (design stage 6): the outer Python loop walks the
student's replaced blocks in order; each is trained a little more on the output of the already assembled student
prefix, to match the teacher's features at the same depth, so errors do not pile up.
The result is saved to `<workdir>/refine/` as the student's starting point for the fine-tune."""
import functools
import time

import jax

from compactkd_jax import feed, seeds, train, workdir
from compactkd_jax import precision as precision_lib
from compactkd_jax.blockwise import teacher_features
from compactkd_jax.context import RunContext
from compactkd_jax.losses import normalized_mse
from compactkd_jax.models.net import BlockNet, LayerSpec

def refine_step(state, idx, key, images, labels, teacher_vars, prefix_vars, *, teacher: BlockNet,
                student_net: BlockNet, spec: LayerSpec, prev: str, preprocess, mesh,
                precision: str = "f32"):
  """One step on the block `spec` alone. The student prefix (blocks before it, inference-mode BN) and
  the teacher are frozen arguments; only the block's own variables are in the donated state."""
  x, _ = feed.gather(images, labels, idx, mesh)
  x = precision_lib.cast(preprocess(x, jax.random.fold_in(key, state.step)), precision)
  target = teacher_features(teacher, precision_lib.cast_params(teacher_vars, precision), x,
                            last=spec.name)[spec.name]
  _, prefix = student_net.apply(precision_lib.cast_params(prefix_vars, precision), x, last=prev)
  x_in = jax.lax.stop_gradient(prefix[prev])

  def loss_fn(params):
    params = precision_lib.cast(params, precision)
    out, upd = spec.build().apply({"params": params, "batch_stats": state.batch_stats}, x_in,
                                  train=True, mutable=["batch_stats"])
    return normalized_mse(out, target), upd.get("batch_stats", {})

  (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads, batch_stats=stats), {"loss": loss}


def _bound_step(jitted, state, idx, *, key, split, teacher_vars, prefix_vars):
  return jitted(state, idx, key, split.images, split.labels, teacher_vars, prefix_vars)


def refine_blocks(plan: dict) -> list[str]:
  """Replaced blocks that have parameters, in network order (keep and skip need no refinement)."""
  return [e["block"] for e in plan["blocks"] if e["candidate"] not in ("keep", "skip")]


def run(ctx: RunContext) -> dict:
  start, prior = time.perf_counter(), train.PriorWork()
  teacher_net, teacher_vars, net, variables, plan = workdir.initial_student(ctx)
  variables = feed.replicate(variables, ctx.mesh)
  tcfg, tr = ctx.cfg.refine.train, ctx.splits["train"]
  total = train.num_steps(tcfg, tr.size)
  seed = seeds.of(ctx.cfg.seed, seeds.REFINE_TRAIN)
  key = jax.random.key(seed)
  names = (net.stem.name, *net.block_names)
  for block in refine_blocks(plan):
    prev = names[names.index(block) - 1]
    block_vars = {k: v[block] for k, v in variables.items() if block in v}
    state = feed.replicate(train.create_state(block_vars, tcfg, total), ctx.mesh)
    spec = net.blocks[net.block_names.index(block)]
    jitted = jax.jit(functools.partial(refine_step, teacher=teacher_net, student_net=net,
                                       spec=spec, prev=prev, preprocess=ctx.preprocess,
                                       mesh=ctx.mesh, precision=tcfg.precision),
                     donate_argnums=0)
    # The prefix is bound now: `variables` is rebound after this block is refined.
    step = functools.partial(_bound_step, jitted, key=key, split=tr, teacher_vars=teacher_vars,
                             prefix_vars=variables)
    batch_fn = lambda s: feed.put_global(tr.train_batch(tcfg.batch_size, seed, s),
                                         feed.sharded(ctx.mesh))
    loop = train.LoopConfig(name=f"refine_{block}", total_steps=total, step_fn=step,
                            batch_fn=batch_fn, checkpoint_dir=ctx.checkpoint_dir(f"refine_{block}"),
                            log_every=tcfg.log_every_steps,
                            checkpoint_every=tcfg.checkpoint_every_steps,
                            lr_hint="config.refine.train.learning_rate", writer=ctx.writer,
                            prior=prior)
    state = train.run_loop(loop, state)
    # The refined block becomes part of the prefix the next block is trained on.
    variables = {"params": {**variables["params"], block: state.params},
                 "batch_stats": {**variables["batch_stats"],
                                 **({block: state.batch_stats} if state.batch_stats else {})}}
  workdir.save_model(ctx, workdir.REFINED, net, variables)
  blocks = refine_blocks(plan)
  return {"blocks": blocks, "steps_per_block": total,
          "images": len(blocks) * total * tcfg.batch_size,
          # With the loop seconds of earlier processes, when a block's loop resumed.
          "wall_seconds": time.perf_counter() - start + prior.seconds}
