"""End-to-end training of the assembled student (design stage 7) and the baselines that every
experiment reports beside it, all through the one supervised loop:
- finetune: the refined student, CE + Hinton KD from the frozen teacher;
- baselines: the same student architecture from random init, CE only ("scratch") and CE + KD ("kd"),
  trained either for the configured epochs or, with `baselines.match="total_cost"`, for the steps
  that cost the same wall time as everything that made our student (equal_cost.py).
Each saves its network to `<workdir>/<name>/` and reports validation and test accuracy."""
import os
import time

from compactkd_jax import (artifacts, equal_cost, feed, refine, student, supervised, teacher,
                           train)
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

BASELINES = ("scratch", "kd")


def _train_and_save(ctx: RunContext, name: str, net, variables, tcfg, section: str,
                    teacher_net=None, teacher_vars=None, kd=None, seed_offset=0,
                    total: int | None = None) -> dict:
  start = time.perf_counter()
  feed.check_batch_size(tcfg.batch_size, ctx.mesh, f"config.{section}.train.batch_size")
  total = total or train.num_steps(tcfg, ctx.splits["train"].size)
  state = feed.replicate(train.create_state(variables, tcfg, total), ctx.mesh)
  state = teacher.run_supervised(ctx, name, net, state, tcfg, total, teacher_net=teacher_net,
                                 teacher_vars=teacher_vars, kd=kd, seed_offset=seed_offset,
                                 section=section)
  final = supervised.variables_of(state)
  artifacts.save_model(ctx.path(name), net, final, ctx.dataset.image_shape,
                       ctx.dataset.num_classes, ctx.preprocess)
  ev = lambda split: supervised.evaluate(net, final, ctx.splits[split], ctx.preprocess, ctx.mesh,
                                         ctx.cfg.data.eval_batch_size)["accuracy"]
  return {"steps": total, "images": total * tcfg.batch_size,
          "epochs": total * tcfg.batch_size / ctx.splits["train"].size,
          "val_accuracy": ev("validation"), "test_accuracy": ev("test"),
          "train_seconds": time.perf_counter() - start}


def run_finetune(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = teacher.load(ctx)
  refined = ctx.path(refine.REFINED_DIR)
  if os.path.exists(os.path.join(refined, artifacts.SPEC_FILE)):
    net, variables, _ = artifacts.load_model(refined)
  else:  # refinement not configured: start from the assembled distilled blocks
    _, _, net, variables, _ = student.initial_student(ctx)
  return _train_and_save(ctx, "finetune", net, variables, ctx.cfg.finetune.train, "finetune",
                         teacher_net, teacher_vars, kd=ctx.cfg.finetune.kd,
                         seed_offset=3)  # the baselines use the same batch and augmentation order


def run_baselines(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = teacher.load(ctx)
  net = student.student_net(teacher_net, student.load_plan(ctx))
  bcfg = ctx.cfg.baselines
  results = {}
  for i, kind in enumerate(bcfg.kinds):
    if kind not in BASELINES:
      raise UserError(f"unknown baseline {kind!r}; valid: {list(BASELINES)}")
    done = ctx.read_json(f"baseline_{kind}", "result.json")
    if done is None:
      variables = supervised.init_variables(net, ctx.dataset.image_shape, ctx.cfg.seed + 10 + i)
      kd = bcfg.kd if kind == "kd" else None
      steps = None
      if bcfg.match == "total_cost":
        steps = _matched_steps(ctx, kind, net, variables, teacher_net, teacher_vars, kd)
      done = _train_and_save(ctx, f"baseline_{kind}", net, variables, bcfg.train, "baselines",
                             teacher_net, teacher_vars, kd=kd, seed_offset=3, total=steps)
      done["match"] = bcfg.match
      ctx.write_json(done, f"baseline_{kind}", "result.json")
    results[kind] = done
  return results


def _matched_steps(ctx: RunContext, kind: str, net, variables, teacher_net, teacher_vars,
                   kd) -> int:
  """The steps of baseline `kind` that cost our student's total wall time; decided once, saved in
  `<workdir>/baselines/matched_steps.json` before training, so a resumed run trains the same."""
  saved = ctx.read_json("baselines", "matched_steps.json") or {}
  if kind in saved:
    return saved[kind]["steps"]
  cost = equal_cost.ours(ctx)
  tcfg = ctx.cfg.baselines.train
  step, batch_fn = teacher.supervised_step(ctx, net, tcfg, teacher_net, teacher_vars, kd,
                                           seed_offset=3)
  # Any step count gives the same per-step time; the schedule length does not matter here.
  probe = feed.replicate(train.create_state(equal_cost.throwaway_copy(variables), tcfg, 1000),
                         ctx.mesh)
  seconds = equal_cost.seconds_per_step(step, batch_fn, probe)
  steps = equal_cost.matched_steps(cost["total_seconds"], seconds)
  saved[kind] = {"steps": steps, "seconds_per_step": seconds,
                 "target_seconds": cost["total_seconds"]}
  ctx.write_json(saved, "baselines", "matched_steps.json")
  return steps
