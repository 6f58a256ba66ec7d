"""End-to-end training of the assembled student (DESIGN stage 7) and the baselines that every
experiment reports beside it, all through the one supervised loop:
- finetune: the refined student, CE + Hinton KD from the frozen teacher;
- baselines: the same student architecture from random init, CE only ("scratch") and CE + KD ("kd").
Each saves its network to `<workdir>/<name>/` and reports validation and test accuracy."""
import os
import time

from compactkd_jax import artifacts, feed, refine, student, supervised, teacher, train
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

BASELINES = ("scratch", "kd")


def _train_and_save(ctx: RunContext, name: str, net, variables, tcfg, section: str,
                    teacher_net=None, teacher_vars=None, kd=None, seed_offset=0) -> dict:
  start = time.perf_counter()
  feed.check_batch_size(tcfg.batch_size, ctx.mesh, f"config.{section}.train.batch_size")
  total = train.num_steps(tcfg, ctx.splits["train"].size)
  state = feed.replicate(train.create_state(variables, tcfg, total), ctx.mesh)
  state = teacher.run_supervised(ctx, name, net, state, tcfg, total, teacher_net=teacher_net,
                                 teacher_vars=teacher_vars, kd=kd, seed_offset=seed_offset,
                                 section=section)
  final = supervised.variables_of(state)
  artifacts.save_model(ctx.path(name), net, final, ctx.dataset.image_shape,
                       ctx.dataset.num_classes, ctx.preprocess)
  ev = lambda split: supervised.evaluate(net, final, ctx.splits[split], ctx.preprocess, ctx.mesh,
                                         ctx.cfg.data.eval_batch_size)["accuracy"]
  return {"steps": total, "val_accuracy": ev("validation"), "test_accuracy": ev("test"),
          "train_seconds": time.perf_counter() - start}


def run_finetune(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = teacher.load(ctx)
  refined = ctx.path(refine.REFINED_DIR)
  if os.path.exists(os.path.join(refined, artifacts.SPEC_FILE)):
    net, variables, _ = artifacts.load_model(refined)
  else:  # refinement not configured: start from the assembled distilled blocks
    _, _, net, variables, _ = student.initial_student(ctx)
  return _train_and_save(ctx, "finetune", net, variables, ctx.cfg.finetune.train, "finetune",
                         teacher_net,
                         teacher_vars, kd=ctx.cfg.finetune.kd,
                         seed_offset=3)  # the baselines use the same batch and augmentation order


def run_baselines(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = teacher.load(ctx)
  net = student.student_net(teacher_net, student.load_plan(ctx))
  results = {}
  for i, kind in enumerate(ctx.cfg.baselines.kinds):
    if kind not in BASELINES:
      raise UserError(f"unknown baseline {kind!r}; valid: {list(BASELINES)}")
    done = ctx.read_json(f"baseline_{kind}", "result.json")
    if done is None:
      variables = supervised.init_variables(net, ctx.dataset.image_shape, ctx.cfg.seed + 10 + i)
      done = _train_and_save(ctx, f"baseline_{kind}", net, variables, ctx.cfg.baselines.train,
                             "baselines", teacher_net, teacher_vars,
                             kd=ctx.cfg.finetune.kd if kind == "kd" else None, seed_offset=3)
      ctx.write_json(done, f"baseline_{kind}", "result.json")
    results[kind] = done
  return results
