"""The teacher phase: train a zoo teacher with the one loop, or load a saved one; evaluate it;
save it to `<workdir>/teacher/` for every later phase (and later runs, via config.teacher.checkpoint).
"""
import os
import time

import jax

from compactkd_jax import artifacts, feed, files, supervised, train
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError
from compactkd_jax.models import BlockNet, get_model, zoo

TEACHER_DIR = "teacher"


def build(cfg, num_classes: int) -> BlockNet:
  options = zoo.model_options(cfg.teacher.model, cfg.teacher.options.to_dict())
  return get_model(cfg.teacher.model, num_classes, **options)


def source_dir(ctx: RunContext) -> str:
  """Where the teacher lives: the configured checkpoint (a workdir or a model dir) or this run's."""
  ckpt = ctx.cfg.teacher.checkpoint
  return _resolve(ckpt) if ckpt else ctx.shared_path(TEACHER_DIR)


def _resolve(ckpt: str) -> str:
  nested = os.path.join(ckpt, TEACHER_DIR)
  return nested if os.path.exists(os.path.join(nested, artifacts.SPEC_FILE)) else ckpt


def saved_preprocess(ckpt: str, current: feed.Preprocess) -> feed.Preprocess:
  """The normalization saved with a teacher checkpoint, with this run's augmentation settings."""
  return artifacts.preprocess_of(_saved_spec(ckpt), current.crop_padding, current.flip)


def _saved_spec(ckpt: str) -> dict:
  path = os.path.join(_resolve(ckpt), artifacts.SPEC_FILE)
  spec = files.read_json(path, fix="re-export or retrain that teacher")
  if spec is None:
    raise UserError(f"no saved teacher in {ckpt} ({artifacts.SPEC_FILE} missing); set "
                    "config.teacher.checkpoint to a workdir whose teacher phase finished")
  return spec


def load(ctx: RunContext) -> tuple[BlockNet, dict]:
  """The frozen teacher (net, variables), checked against the data it is about to see."""
  net, variables, spec = artifacts.load_model(source_dir(ctx))
  shape, classes = tuple(spec["image_shape"]), spec["num_classes"]
  if shape != ctx.dataset.image_shape or classes != ctx.dataset.num_classes:
    raise UserError(f"the teacher in {source_dir(ctx)} expects images {shape} and {classes} "
                    f"classes, but the data has {ctx.dataset.image_shape} and "
                    f"{ctx.dataset.num_classes}; use a teacher trained on this dataset")
  return net, feed.replicate(variables, ctx.mesh)


def train_teacher(ctx: RunContext) -> tuple[BlockNet, dict, int]:
  cfg, tcfg = ctx.cfg, ctx.cfg.teacher.train
  net = build(cfg, ctx.dataset.num_classes)
  feed.check_batch_size(tcfg.batch_size, ctx.mesh, "config.teacher.train.batch_size")
  total = train.num_steps(tcfg, ctx.splits["train"].size)
  state = train.create_state(supervised.init_variables(net, ctx.dataset.image_shape, cfg.seed),
                             tcfg, total)
  state = feed.replicate(state, ctx.mesh)
  return net, supervised.variables_of(run_supervised(ctx, "teacher", net, state, tcfg, total)), total


def supervised_step(ctx: RunContext, net: BlockNet, tcfg, teacher_net=None, teacher_vars=None,
                    kd=None, seed_offset: int = 0):
  """(step_fn, batch_fn) of CE (and KD when `kd` is given) training of `net` for the one loop."""
  key = jax.random.key(ctx.cfg.seed + seed_offset)
  train_split = ctx.splits["train"]
  step = supervised.make_classify_step(
      net, ctx.preprocess, ctx.mesh, key, train_split.images, train_split.labels,
      teacher_net=teacher_net, teacher_vars=teacher_vars,
      kd_temperature=kd.temperature if kd else 1.0, kd_alpha=kd.alpha if kd else 0.0,
      hint_beta=kd.get("hints", 0.0) if kd else 0.0, precision=tcfg.precision)
  batch_fn = lambda s: feed.put_global(
      train_split.train_batch(tcfg.batch_size, ctx.cfg.seed + seed_offset, s),
      feed.sharded(ctx.mesh))
  return step, batch_fn


def run_supervised(ctx: RunContext, name: str, net: BlockNet, state, tcfg, total: int,
                   teacher_net=None, teacher_vars=None, kd=None, seed_offset: int = 0,
                   section: str = "teacher"):
  """Trains `net` from `state` with CE (and KD when `kd` is given) through the one loop."""
  step, batch_fn = supervised_step(ctx, net, tcfg, teacher_net, teacher_vars, kd, seed_offset)
  eval_fn = lambda st: supervised.evaluate(net, supervised.variables_of(st), ctx.splits["validation"],
                                           ctx.preprocess, ctx.mesh, ctx.cfg.data.eval_batch_size)
  spec = train.LoopSpec(name=name, total_steps=total, step_fn=step, batch_fn=batch_fn,
                        checkpoint_dir=ctx.path("checkpoints", name),
                        log_every=tcfg.log_every_steps, checkpoint_every=tcfg.checkpoint_every_steps,
                        eval_every=tcfg.eval_every_steps, eval_fn=eval_fn,
                        lr_hint=f"config.{section}.train.learning_rate", writer=ctx.writer)
  return train.run_loop(spec, state)


def run(ctx: RunContext) -> dict:
  start = time.perf_counter()
  steps, model = 0, ctx.cfg.teacher.model
  if ctx.cfg.teacher.checkpoint:
    net, variables = load(ctx)
    model = _saved_spec(ctx.cfg.teacher.checkpoint).get("model", "imported")
  else:
    net, variables, steps = train_teacher(ctx)
    artifacts.save_model(ctx.path(TEACHER_DIR), net, variables, ctx.dataset.image_shape,
                         ctx.dataset.num_classes, ctx.preprocess,
                         extra={"model": ctx.cfg.teacher.model,
                                "options": ctx.cfg.teacher.options.to_dict()})
  ev = lambda split: supervised.evaluate(net, variables, ctx.splits[split], ctx.preprocess,
                                         ctx.mesh, ctx.cfg.data.eval_batch_size)["accuracy"]
  return {"model": model, "source": source_dir(ctx), "steps": steps,
          "images": steps * ctx.cfg.teacher.train.batch_size,
          "val_accuracy": ev("validation"), "test_accuracy": ev("test"),
          "wall_seconds": time.perf_counter() - start}
