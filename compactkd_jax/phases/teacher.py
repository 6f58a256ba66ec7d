"""The teacher phase (design stage 1): train a zoo teacher through the supervised runner, or load a
saved one; evaluate it; save it to `<workdir>/teacher/` for every later phase (and later runs, via
config.teacher.checkpoint)."""
import time

from compactkd_jax import seeds, supervised, workdir
from compactkd_jax.context import RunContext
from compactkd_jax.models import BlockNet, get_model, zoo


def build(cfg, num_classes: int) -> BlockNet:
  options = zoo.model_options(cfg.teacher.model, cfg.teacher.options.to_dict())
  return get_model(cfg.teacher.model, num_classes, **options)


def run(ctx: RunContext) -> dict:
  start = time.perf_counter()
  if ctx.cfg.teacher.checkpoint:
    net, variables = workdir.load_teacher(ctx)
    ev = lambda split: supervised.evaluate(net, variables, ctx.splits[split], ctx.preprocess,
                                           ctx.mesh, ctx.cfg.data.eval_batch_size)["accuracy"]
    model = workdir.saved_teacher_spec(ctx.cfg.teacher.checkpoint).get("model", "imported")
    result = {"steps": 0, "images": 0, "val_accuracy": ev("validation"),
              "test_accuracy": ev("test")}
  else:
    net = build(ctx.cfg, ctx.dataset.num_classes)
    variables = supervised.init_variables(net, ctx.dataset.image_shape,
                                          seeds.of(ctx.cfg.seed, seeds.TEACHER_INIT))
    model = ctx.cfg.teacher.model
    result = supervised.train_and_save(
        ctx, workdir.TEACHER, net, variables, "teacher", seeds.TEACHER_TRAIN,
        extra={"model": model, "options": ctx.cfg.teacher.options.to_dict()})
    result.pop("epochs")
  return {"model": model, "source": workdir.teacher_dir(ctx), **result,
          "wall_seconds": time.perf_counter() - start}
