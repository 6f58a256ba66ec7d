"""The baselines phase (design stage 8): the same student architecture from random init, CE only
("scratch") and CE + Hinton KD ("kd"), trained either for the configured epochs or, with
`baselines.match="total_cost"`, for the steps that cost what everything that made our student cost
(equal_cost.py: counted in our fine-tune's steps, priced side by side). Each is saved to
`<workdir>/baseline_<kind>/`."""
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
  """The steps of baseline `kind` that cost what our student did (equal_cost.py); decided once,
  saved in `<workdir>/baselines/matched_steps.json` before training, so a resumed run trains the
  same."""
  saved = ctx.read_json(*workdir.MATCHED_STEPS) or {}
  if kind in saved:
    return saved[kind]["steps"]
  cost = equal_cost.ours(ctx)
  if not cost["finetune_step_equivalents"]:
    raise UserError("the finetune result records no step count (a workdir of an older version); "
                    "delete its finetune folder to redo it, or set config.baselines.match='epochs'")
  ours = _probe(ctx, net, variables, ctx.cfg.finetune.train, teacher_net, teacher_vars,
                ctx.cfg.finetune.kd)
  baseline = _probe(ctx, net, variables, ctx.cfg.baselines.train, teacher_net, teacher_vars, kd)
  ours_seconds, seconds = equal_cost.side_by_side_seconds(ours, baseline)
  steps = equal_cost.matched_steps(cost, ours_seconds, seconds)
  saved[kind] = {"steps": steps, "seconds_per_step": seconds,
                 "ours_finetune_seconds_per_step": ours_seconds,
                 "ours_finetune_step_equivalents": cost["finetune_step_equivalents"],
                 "target_seconds": cost["total_seconds"]}
  ctx.write_json(saved, *workdir.MATCHED_STEPS)
  return steps


def _probe(ctx: RunContext, net, variables, tcfg, teacher_net, teacher_vars, kd) -> tuple:
  """(step_fn, batch_fn, state) of one training recipe for timing, on a throwaway copy of the
  variables (the step donates its state); our fine-tune and a baseline differ only in their
  recipe, so the same architecture and initial weights serve both."""
  step, batch_fn = supervised.supervised_step(ctx, net, tcfg, seeds.STUDENT_TRAIN, teacher_net,
                                              teacher_vars, kd)
  # Any step count gives the same per-step time; the schedule length does not matter here.
  state = feed.replicate(train.create_state(equal_cost.throwaway_copy(variables), tcfg, 1000),
                         ctx.mesh)
  return step, batch_fn, state
