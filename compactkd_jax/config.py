"""The default configuration (every valid key, with its default) and validation of user configs.

Experiment files in configs/ start from `default_config()` and change what they need; anything not
in the defaults is rejected before anything compiles, with the valid keys listed.
"""
import math

import ml_collections

from compactkd_jax import config_keys
from compactkd_jax.errors import UserError

PHASES = config_keys.PHASES


def train_defaults(epochs: float, learning_rate: float, batch_size: int = 128,
                   weight_decay: float = 5e-4) -> ml_collections.ConfigDict:
  """Optimizer and loop settings shared by every training phase (SGD, Nesterov, cosine decay)."""
  return ml_collections.ConfigDict(dict(
      epochs=float(epochs), steps=0,  # steps > 0 overrides epochs
      batch_size=batch_size, learning_rate=float(learning_rate), momentum=0.9, nesterov=True,
      weight_decay=float(weight_decay), warmup_steps=0,
      log_every_steps=50, eval_every_steps=0, checkpoint_every_steps=200,
      precision="f32"))  # "bf16": bfloat16 passes, float32 parameters and losses (precision.py)


# The candidate menu of the CPU-sized ResNet/VGG runs: the dense candidates. dwsep and ir_* add
# depthwise convolutions, which CPUs run at a fraction of a dense conv's FLOP rate even as shifted
# sums (models/layers.py); on GPU/TPU use the full menu.
CPU_CANDIDATES = ("keep", "slim_0.25", "slim_0.5", "slim_0.75", "skip")


def teacher_to_plateau(model: str, width: float, epochs: int, train_size: int = 55000,
                       batch_size: int = 128) -> ml_collections.ConfigDict:
  """A teacher-only run trained to a plateau: SGD lr 0.1 with cosine decay for `epochs`, the
  validation accuracy evaluated and a checkpoint kept every epoch (the committed teachers)."""
  c = default_config()
  c.phases = ("teacher",)
  c.teacher.model = model
  c.teacher.options.width = width
  c.teacher.train.epochs = epochs
  c.teacher.train.learning_rate = 0.1
  c.teacher.train.log_every_steps = 200
  c.teacher.train.eval_every_steps = train_size // batch_size
  c.teacher.train.checkpoint_every_steps = train_size // batch_size
  return c


def short_schedule(cfg: ml_collections.ConfigDict, teacher_epochs: float, distill_epochs: float,
                   student_epochs: float) -> None:
  """The short schedule of the CPU-sized runs (quickstart, reproduction): every phase, the CPU
  menu, refinement 0.1 epoch per block, candidates scored on 2,000 validation images, and the
  fine-tune and both baselines trained for the same `student_epochs` (equal FINE-TUNE epochs: the
  reproduction's recipe; the quickstart matches the baselines on total cost instead)."""
  cfg.phases = PHASES
  cfg.teacher.train.epochs = teacher_epochs
  cfg.teacher.train.log_every_steps = 100
  cfg.distill.candidates = CPU_CANDIDATES
  cfg.distill.train.epochs = distill_epochs
  cfg.distill.score_examples = 2000
  cfg.refine.train.epochs = 0.1
  cfg.finetune.train.epochs = student_epochs
  cfg.baselines.train.epochs = student_epochs
  cfg.baselines.match = "epochs"


def use_tfds_cifar(cfg: ml_collections.ConfigDict, name: str) -> None:
  """Data settings of the CIFAR configs: tfds `name` (prepared on disk), 32x32 crops padded by 4."""
  cfg.data.source = "tfds"
  cfg.data.name = name
  cfg.data.crop_padding = 4


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.phases = ("teacher",)
  c.data = ml_collections.ConfigDict(dict(
      source="idx", name="fashion_mnist", data_dir="", validation_size=5000, split_seed=0,
      train_limit=0, test_limit=0,  # > 0 keeps only the first N examples (tests, smoke runs)
      crop_padding=2, flip=True, eval_batch_size=1000,
      # Every split is cut into this many contiguous shards; each process holds only its own and
      # every batch takes batch_size/shards examples from each shard. 0: one per process. Results
      # depend on the shard count, not on the number of devices or processes: fix it (a multiple
      # of the process count) to reproduce a run on another number of processes.
      shards=0))
  c.teacher = ml_collections.ConfigDict(dict(
      model="resnet20", checkpoint="",  # a workdir (or its teacher/ folder) to load instead of training
      # Each model takes the options it knows: resnet* shortcut A (parameter-free) or B (1x1 conv);
      # vgg* classifier "single" (one dense layer) or "zoo" (512-512-classes, dropout);
      # mobilenet_v2 dropout; every model a width multiplier.
      options=ml_collections.ConfigDict(dict(width=1.0, shortcut="A", classifier="single",
                                             dropout=0.0)),
      train=train_defaults(epochs=8, learning_rate=0.1)))
  c.distill = ml_collections.ConfigDict(dict(
      schedule="parallel",
      # slim candidates of ResNet and MobileNetV2 blocks start from the teacher block's strongest
      # channels (inherit.py) instead of random weights.
      inherit=False,
      score_examples=0,  # > 0 scores on the first N validation examples only (hybrid accuracy
                         # runs the teacher suffix once per candidate)
      candidates=("keep", "dwsep", "slim_0.25", "slim_0.5", "slim_0.75",
                                       "ir_1", "ir_2", "ir_3", "ir_6", "skip"),
      train=train_defaults(epochs=1, learning_rate=0.05, weight_decay=0.0)))
  c.select = ml_collections.ConfigDict(dict(
      metric="flops", budget=0.5, relative=True, damage="accuracy", solver="dp",
      # A budget sweep: one student per budget from the same teacher and distillation, each in
      # <workdir>/budget_<metric>_<value>/ (select, refine, finetune, baselines, report), and a
      # summary with the measured trade-off curve at the top. Empty: the single `budget` above.
      budgets=(),
      # Further limits the plan must meet together with the budget (one plan meeting them all,
      # solved exactly by scipy's MILP), in the same units as the budget (fractions of the teacher
      # when relative). 0: no limit on that metric.
      constraints=ml_collections.ConfigDict(dict(flops=0.0, macs=0.0, params=0.0, latency=0.0)),
      # The runtime whose measured latencies (a lookup table, ms, fp32, report.threads threads)
      # are the cost when metric is "latency" or a latency constraint is set.
      runtime="onnxruntime",
      # K > 1: the K least-damage plans are assembled from their distilled candidates and the one
      # scoring best on the validation split is refined and fine-tuned (1: the least-damage plan).
      rerank=1,
      # A candidate name (e.g. "inner_0.5"): every block takes it instead of the knapsack's plan,
      # which must still fit the budget. An ablation, the uniformly narrowed student that the
      # selection is measured against. Empty: the knapsack's plan.
      uniform=""))
  c.refine = ml_collections.ConfigDict(dict(
      train=train_defaults(epochs=0.5, learning_rate=0.02, weight_decay=0.0)))
  c.finetune = ml_collections.ConfigDict(dict(
      # hints: beta of the feature hints (normalized MSE to the teacher's output of every block,
      # averaged over blocks) added to the fine-tune loss; 0 turns them off.
      kd=ml_collections.ConfigDict(dict(temperature=4.0, alpha=0.9, hints=0.0)),
      train=train_defaults(epochs=4, learning_rate=0.02)))
  c.baselines = ml_collections.ConfigDict(dict(
      kinds=("scratch", "kd"),
      # "total_cost": each baseline trains the steps that cost what everything that made our
      # student cost (distill, score, refine, fine-tune): counted in our fine-tune's steps and
      # priced by timing both steps side by side on this machine (equal_cost.py); its
      # train.epochs are then unused. "epochs": train.epochs (or steps), like the fine-tune.
      match="total_cost",
      # The KD-only baseline's own Hinton KD settings, chosen for it (not copied from ours).
      kd=ml_collections.ConfigDict(dict(temperature=4.0, alpha=0.9)),
      train=train_defaults(epochs=4, learning_rate=0.1)))
  c.report = ml_collections.ConfigDict(dict(
      latency_batch_size=1, throughput_batch_size=256,
      # Deployment: teacher and student exported to these runtimes' files (fp32 and int8), checked
      # and timed there (compactkd_jax/deploy; needs the deploy extra). Empty: JAX only.
      runtimes=(), threads=1))
  return c


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Rejects unknown keys, wrong types and impossible values, naming the valid choices: keys and
  types against `default_config()`, each value against its rule in `config_keys`, then the rules
  that tie several keys together."""
  _check_keys(cfg, default_config(), "")
  config_keys.check(cfg)
  for key, budget in [("budget", cfg.select.budget),
                      *(("budgets", b) for b in _budget_list(cfg.select.budgets))]:
    if not (0 < budget < math.inf) or (cfg.select.relative and budget > 1.0):
      raise UserError(f"config.select.{key} has {budget}; a budget must be finite and > 0, and at "
                      "most 1.0 when relative (a fraction of the teacher)")
  over = [k for k, v in cfg.select.constraints.items() if cfg.select.relative and v > 1.0]
  if over:
    raise UserError(f"config.select.constraints.{over[0]}={cfg.select.constraints[over[0]]} is "
                    "above 1.0, the teacher itself, while select.relative is on; give a fraction")
  if cfg.select.rerank > 1 and needs_latency(cfg.select):
    raise UserError(f"config.select.rerank={cfg.select.rerank} re-ranks plans by accuracy, which "
                    "a latency budget or limit cannot do (each plan is measured on the runtime); "
                    "set config.select.rerank=1")
  _check_uniform(cfg)
  if len(set(cfg.select.budgets)) != len(cfg.select.budgets):
    raise UserError(f"config.select.budgets={tuple(cfg.select.budgets)} lists a budget twice; "
                    "give each budget once")
  for name in config_keys.TRAIN_SECTIONS:
    t = cfg[name].train
    if t.epochs <= 0 and t.steps <= 0:
      raise UserError(f"config.{name}.train needs epochs > 0 or steps > 0")


def _check_uniform(cfg) -> None:
  """A uniform plan is one fixed plan: nothing to re-rank, no further limits to solve for."""
  s = cfg.select
  if not s.uniform:
    return
  if s.uniform not in cfg.distill.candidates:
    raise UserError(f"config.select.uniform={s.uniform!r} is not in config.distill.candidates "
                    f"{tuple(cfg.distill.candidates)}; name one of them, or '' for the knapsack")
  if s.rerank > 1 or needs_latency(s) or any(v > 0 for v in s.constraints.values()):
    raise UserError(f"config.select.uniform={s.uniform!r} fixes the plan: it takes no "
                    "select.rerank, select.constraints or latency budget; unset those, or set "
                    "config.select.uniform=''")


def _budget_list(budgets) -> tuple[float, ...]:
  if not isinstance(budgets, (tuple, list)) or not all(
      isinstance(b, (int, float)) and not isinstance(b, bool) for b in budgets):
    raise UserError(f"config.select.budgets={budgets!r} must be a tuple of numbers, e.g. "
                    "'(0.75, 0.5, 0.25)'")
  return tuple(float(b) for b in budgets)


def _check_keys(cfg, ref, prefix):
  for key in cfg.keys():
    path = f"{prefix}{key}"
    if key not in ref:
      raise UserError(f"unknown config key {path!r}; valid keys here: {sorted(ref.keys())}")
    value, default = cfg[key], ref[key]
    if isinstance(default, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise UserError(f"config key {path!r} must be a section (ConfigDict)")
      _check_keys(value, default, path + ".")
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
      if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"config key {path!r} must be a number, got {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
      raise UserError(f"config key {path!r} must be a string, got {value!r}")


def needs_latency(select_cfg) -> bool:
  """A latency budget or limit: selection needs the runtime's lookup table."""
  return select_cfg.metric == "latency" or select_cfg.constraints.latency > 0


if __name__ == "__main__":  # the key reference, docs/config_keys.md
  print(config_keys.describe_markdown(default_config()), end="")
