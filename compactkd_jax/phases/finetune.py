"""The finetune phase (design stage 7): the refined student (or, without refinement, the assembled
distilled blocks) trained end to end with (1 - alpha) CE + alpha Hinton KD from the frozen teacher
(and feature hints with `finetune.kd.hints`); saved to `<workdir>/finetune/`."""
from compactkd_jax import seeds, supervised, workdir
from compactkd_jax.context import RunContext


def run(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = workdir.load_teacher(ctx)
  if workdir.has_model(ctx, workdir.REFINED):
    net, variables = workdir.load_model(ctx, workdir.REFINED)
  else:  # refinement not configured: start from the assembled distilled blocks
    _, _, net, variables, _ = workdir.initial_student(ctx)
  # The baselines draw the same batches and augmentation (seeds.STUDENT_TRAIN).
  return supervised.train_and_save(ctx, workdir.FINETUNED, net, variables, "finetune",
                                   seeds.STUDENT_TRAIN, teacher_net, teacher_vars,
                                   kd=ctx.cfg.finetune.kd)
