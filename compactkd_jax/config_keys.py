"""Every config key's rule and meaning, in one table.

`config.validate` checks each value against its rule before anything compiles, and
`python -m compactkd_jax.config` prints the same table as the key reference
(docs/config_keys.md; a test keeps that file, this table and `config.default_config()` in step: a
key without a rule, or a rule without a key, fails the suite).
"""
import dataclasses
import math
from typing import Callable

from compactkd_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Rule:
  """A number in [low, high) (or (low, high) when `strict`; always finite), a choice from a set, a
  tuple of such choices (`each`), or free text/flag."""
  doc: str
  low: float | None = None
  strict: bool = False
  high: float | None = None
  high_inclusive: bool = False  # value <= high (else value < high)
  choices: tuple | Callable[[], tuple] = ()
  each: bool = False        # a tuple whose every item is one of `choices`
  nonempty: bool = False    # the tuple must name at least one

  def allowed(self) -> tuple:
    return self.choices() if callable(self.choices) else self.choices

  def describe(self) -> str:
    if self.low is not None:
      bound = f"> {self.low}" if self.strict else f">= {self.low}"
      op = "<=" if self.high_inclusive else "<"
      upper = "" if self.high is None else f" and {op} {self.high}"
      return f"finite and {bound}{upper}"
    if self.choices:
      listed = ", ".join(map(str, self.allowed()))
      return (f"non-empty tuple of: {listed}" if self.nonempty else
              f"tuple of: {listed}") if self.each else f"one of: {listed}"
    return ""


def _num(doc, low=0, strict=False, high=None, high_inclusive=False) -> Rule:
  return Rule(doc, low=low, strict=strict, high=high, high_inclusive=high_inclusive)


def _candidates() -> tuple:
  from compactkd_jax.models import candidates  # models import no heavy machinery
  return tuple(candidates.CANDIDATES)


def _models() -> tuple:
  from compactkd_jax.models import zoo
  return tuple(zoo.MODELS)


PHASES = ("teacher", "distill", "select", "refine", "finetune", "baselines", "report")
TRAIN_SECTIONS = ("teacher", "distill", "refine", "finetune", "baselines")

# The keys of every `<section>.train` (config.train_defaults).
TRAIN_RULES = {
    "epochs": _num("passes over the training split (unused when steps > 0)"),
    "steps": _num("optimizer steps; > 0 overrides epochs"),
    "batch_size": _num("global batch size, split over devices and shards", strict=True),
    "learning_rate": _num("peak learning rate of SGD with cosine decay", strict=True),
    "momentum": _num("SGD momentum", high=1),
    "nesterov": Rule("Nesterov momentum"),
    "weight_decay": _num("L2 weight decay added to the gradient (every parameter, BN included)"),
    "warmup_steps": _num("linear warm-up steps before the cosine decay"),
    "log_every_steps": _num("steps between logged training metrics", strict=True),
    "eval_every_steps": _num("steps between validation passes; 0: at the end only"),
    "checkpoint_every_steps": _num("steps between orbax checkpoints", strict=True),
    "precision": Rule("compute dtype of the passes: f32, or bf16 (float32 parameters, optimizer "
                      "state, BN statistics and losses)", choices=("f32", "bf16")),
}

RULES = {
    "seed": _num("the run's random seed (initialization, data order, augmentation)"),
    "phases": Rule("phases to run, in order", choices=PHASES, each=True, nonempty=True),
    "data.source": Rule("'idx': Fashion-MNIST IDX files; 'tfds': a prepared tfds dataset",
                        choices=("idx", "tfds")),
    "data.name": Rule("dataset name (tfds name when source is tfds)"),
    "data.data_dir": Rule("directory of the data; empty: the default location"),
    "data.validation_size": _num("training examples held out for validation (every decision)",
                                 strict=True),
    "data.split_seed": _num("seed of the train/validation split"),
    "data.train_limit": _num("> 0 keeps only the first N training examples"),
    "data.test_limit": _num("> 0 keeps only the first N test examples"),
    "data.crop_padding": _num("random-crop padding in pixels; 0: no crop"),
    "data.flip": Rule("random horizontal flips"),
    "data.eval_batch_size": _num("batch size of evaluation passes", strict=True),
    "data.shards": _num("contiguous shards per split (0: one per process)"),
    "teacher.model": Rule("teacher architecture from the zoo", choices=_models),
    "teacher.checkpoint": Rule("a workdir or teacher/ folder to load instead of training"),
    "teacher.options.width": _num("channel width multiplier", strict=True),
    "teacher.options.shortcut": Rule("ResNet shortcut: A (parameter-free) or B (1x1 conv)",
                                     choices=("A", "B")),
    "teacher.options.classifier": Rule("VGG head: one dense layer or the zoo's 512-512-classes",
                                       choices=("single", "zoo")),
    "teacher.options.dropout": _num("dropout rate of VGG/MobileNetV2 heads", high=1),
    "distill.schedule": Rule("train all blocks' candidates at once or block after block",
                             choices=("parallel", "sequential")),
    "distill.inherit": Rule("slim and inner candidates start from the teacher's strongest channels"),
    "distill.score_examples": _num("> 0 scores candidates on the first N validation examples"),
    "distill.candidates": Rule("the candidate menu of every block", choices=_candidates,
                               each=True, nonempty=True),
    "select.metric": Rule("the cost the budget limits (latency: measured on select.runtime)",
                          choices=("flops", "macs", "params", "latency")),
    "select.budget": _num("the budget (a fraction of the teacher when relative)", strict=True),
    "select.relative": Rule("budget as a fraction of the teacher's cost (at most 1.0)"),
    "select.damage": Rule("how a candidate's damage is scored", choices=("accuracy", "mse")),
    "select.solver": Rule("exact one-budget DP, exact MILP (any number of limits), or the greedy "
                          "baseline", choices=("dp", "milp", "greedy")),
    "select.constraints.flops": _num("FLOPs limit met together with the budget (0: none)"),
    "select.constraints.macs": _num("MACs limit met together with the budget (0: none)"),
    "select.constraints.params": _num("parameter limit met together with the budget (0: none)"),
    "select.constraints.latency": _num("latency limit (ms, or a fraction of the teacher's) met "
                                       "together with the budget (0: none)"),
    "select.runtime": Rule("runtime of the latency lookup table",
                           choices=("onnxruntime", "litert")),
    "select.rerank": _num("K > 1: of the K least-damage plans, the one whose assembled student "
                          "scores best on validation (1: off)", low=1),
    "select.uniform": Rule("a candidate every block takes instead of the knapsack's plan (the "
                           "uniform ablation; empty: the knapsack)"),
    "select.budgets": Rule("a budget sweep: one student per budget (empty: the single budget)"),
    "finetune.kd.temperature": _num("Hinton KD temperature", strict=True),
    "finetune.kd.alpha": _num("weight of the KD term (1 - alpha on cross-entropy)", high=1,
                              high_inclusive=True),
    "finetune.kd.hints": _num("weight of the feature hints (0: off)"),
    "baselines.kinds": Rule("baselines trained beside ours", choices=("scratch", "kd"), each=True),
    "baselines.match": Rule("equal total cost (measured wall) or equal epochs",
                            choices=("total_cost", "epochs")),
    "baselines.kd.temperature": _num("the KD-only baseline's temperature", strict=True),
    "baselines.kd.alpha": _num("the KD-only baseline's KD weight", high=1, high_inclusive=True),
    "report.latency_batch_size": _num("batch size of the latency measurement", strict=True),
    "report.throughput_batch_size": _num("batch size of the throughput measurement", strict=True),
    "report.runtimes": Rule("runtimes the teacher and student are exported to and timed on "
                            "(fp32 and int8)", choices=("onnxruntime", "litert"), each=True),
    "report.threads": _num("threads of the deployed runtimes (report and latency table)",
                           strict=True),
}


def rules() -> dict[str, Rule]:
  """Every key path with its rule, the training keys expanded for each training section."""
  table = dict(RULES)
  for section in TRAIN_SECTIONS:
    table.update({f"{section}.train.{k}": r for k, r in TRAIN_RULES.items()})
  return table


def value_at(cfg, key: str):
  for part in key.split("."):
    cfg = cfg[part]
  return cfg


def check(cfg) -> None:
  """Checks every value with a rule (keys and types were checked against the defaults first);
  the first violation is one UserError naming the key, its value and what it must be."""
  for key, rule in rules().items():
    _check_value(key, value_at(cfg, key), rule)


def _check_value(key: str, value, rule: Rule) -> None:
  if rule.low is not None:
    if not (math.isfinite(value) and (value > rule.low if rule.strict else value >= rule.low) and
            (rule.high is None or value < rule.high or
             (rule.high_inclusive and value == rule.high))):
      raise UserError(f"config.{key}={value} must be {rule.describe()}")
  elif rule.choices and rule.each:
    if not isinstance(value, (tuple, list)):
      raise UserError(f"config.{key}={value!r} must be a tuple, e.g. "
                      f"\"({', '.join(repr(c) for c in rule.allowed()[:2])},)\"")
    items = tuple(value)
    if rule.nonempty and not items:
      raise UserError(f"config.{key} is empty; name at least one of: "
                      f"{', '.join(map(str, rule.allowed()))}")
    unknown = [v for v in items if v not in rule.allowed()]
    if unknown:
      raise UserError(f"config.{key} has unknown {unknown}; valid: "
                      f"{', '.join(map(str, rule.allowed()))}")
  elif rule.choices and value not in rule.allowed():
    raise UserError(f"config.{key}={value!r} is not valid; valid: "
                    f"{', '.join(map(str, rule.allowed()))}")


def describe_markdown(defaults) -> str:
  """The key reference: every key, its default, what it may be, and what it means."""
  lines = ["# Config keys", "",
           "Generated by `python -m compactkd_jax.config` from the table `config.validate` "
           "checks; every key not listed here is rejected.", "",
           "| key | default | allowed | meaning |", "|---|---|---|---|"]
  for key, rule in rules().items():
    default = value_at(defaults, key)
    allowed = rule.describe() or ("True or False" if isinstance(default, bool) else
                                  "text" if isinstance(default, str) else "tuple")
    lines.append(f"| `{key}` | `{default!r}` | {allowed} | {rule.doc} |")
  return "\n".join(lines) + "\n"

