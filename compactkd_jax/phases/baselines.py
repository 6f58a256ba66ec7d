"""The baselines phase (design stage 8): the same student architecture from random init, CE only
("scratch") and CE + Hinton KD ("kd"), trained either for the configured epochs or, with
`baselines.match="total_cost"`, for the steps that cost the same wall time as everything that made
our student (equal_cost.py). Each is saved to `<workdir>/baseline_<kind>/`."""
from compactkd_jax import equal_cost, feed, seeds, supervised, train, workdir
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

KINDS = ("scratch", "kd")


def run(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = workdir.load_teacher(ctx)
  net = workdir.student_net(teacher_net, workdir.load_plan(ctx))
  bcfg = ctx.cfg.baselines
  results = {}
  for kind in bcfg.kinds:
    if kind not in KINDS:
      raise UserError(f"unknown baseline {kind!r}; valid: {list(KINDS)}")
    folder = workdir.baseline_dir(kind)
    done = ctx.read_json(folder, workdir.RESULT)
    if done is None:
      variables = supervised.init_variables(net, ctx.dataset.image_shape,
                                            seeds.of(ctx.cfg.seed, seeds.baseline_init(kind)))
      kd = bcfg.kd if kind == "kd" else None
      steps = None
      if bcfg.match == "total_cost":
        steps = _matched_steps(ctx, kind, net, variables, teacher_net, teacher_vars, kd)
      # The fine-tune's batches and augmentation (seeds.STUDENT_TRAIN): the same images, in order.
      done = supervised.train_and_save(ctx, folder, net, variables, "baselines",
                                       seeds.STUDENT_TRAIN, teacher_net, teacher_vars, kd=kd,
                                       total=steps)
      done["match"] = bcfg.match
      ctx.write_json(done, folder, workdir.RESULT)
    results[kind] = done
  return results


def _matched_steps(ctx: RunContext, kind: str, net, variables, teacher_net, teacher_vars,
                   kd) -> int:
  """The steps of baseline `kind` that cost our student's total wall time; decided once, saved in
  `<workdir>/baselines/matched_steps.json` before training, so a resumed run trains the same."""
  saved = ctx.read_json(*workdir.MATCHED_STEPS) or {}
  if kind in saved:
    return saved[kind]["steps"]
  cost = equal_cost.ours(ctx)
  tcfg = ctx.cfg.baselines.train
  step, batch_fn = supervised.supervised_step(ctx, net, tcfg, seeds.STUDENT_TRAIN, teacher_net,
                                              teacher_vars, kd)
  # Any step count gives the same per-step time; the schedule length does not matter here.
  probe = feed.replicate(train.create_state(equal_cost.throwaway_copy(variables), tcfg, 1000),
                         ctx.mesh)
  seconds = equal_cost.seconds_per_step(step, batch_fn, probe)
  steps = equal_cost.matched_steps(cost["total_seconds"], seconds)
  saved[kind] = {"steps": steps, "seconds_per_step": seconds,
                 "target_seconds": cost["total_seconds"]}
  ctx.write_json(saved, *workdir.MATCHED_STEPS)
  return steps
