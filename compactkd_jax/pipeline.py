"""The outer loop: validate the config, prepare the workdir and the data, run the configured
phases in order. A phase whose `<workdir>/<phase>/result.json` exists is done and never re-run;
an unfinished one resumes from its own checkpoints.

A budget sweep (`config.select.budgets`) runs the shared phases (teacher, distill) once, then the
per-budget phases once per budget in `<workdir>/budget_<metric>_<value>/`, then writes the sweep's
summary (sweep.py) at the top of the workdir.
"""
import glob
import hashlib
import json
import os
import time

import jax
from absl import logging

from compactkd_jax import config as config_lib
from compactkd_jax import config_keys
from compactkd_jax import data, feed, files, sweep, tensorboard_writer
from compactkd_jax import workdir as workdir_lib
from compactkd_jax.context import CHECKPOINTS, RunContext
from compactkd_jax.errors import UserError
from compactkd_jax.phases import REGISTRY
from compactkd_jax.phases import select as select_phase


def check_workdir(cfg, workdir: str) -> dict | None:
  """A workdir belongs to one config: resuming with a different one would mix results. Returns the
  config to save as the workdir's (None: unchanged); `claim_workdir` saves it once the run has
  really started, so a run that fails before (bad data directory, ...) locks nothing."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} is a file; give a directory (new or an earlier run's)")
  try:  # a read-only or impossible location fails here, not after the data and the compiles
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise UserError(f"cannot write to --workdir {workdir}: {e.strerror or e}; choose a writable "
                    "directory") from None
  path = os.path.join(workdir, "config.json")
  current = json.loads(cfg.to_json_best_effort())
  saved = files.read_json(path, fix="delete it only if the workdir holds nothing you need, or use "
                          "a new --workdir")
  changed = ["(a new workdir)"]
  if saved is not None:
    changed = _differences(saved, current)
    defaults = json.loads(config_lib.default_config().to_json_best_effort())
    refused = [d for d in changed if not (_may_change(d, workdir) or _new_at_default(d, saved,
                                                                                    defaults, current))]
    if refused:
      raise UserError(f"workdir {workdir} was made by a different config (differs in "
                      f"{', '.join(refused[:5])}); use a new --workdir or the original config")
  return current if changed else None  # the accepted changes become the workdir's config


def claim_workdir(workdir: str, config: dict | None) -> None:
  if config is not None:
    files.write_json(os.path.join(workdir, "config.json"), config)


def _may_change(key: str, workdir: str) -> bool:
  """Which phases run may always change. A phase's own settings may change while the phase has not
  started (no `<workdir>/<phase>/` yet: nothing depends on them, e.g. another budget for a run whose
  teacher and distillation are done), and its training settings while it has not finished (e.g. a
  lower learning rate after a diverged loss). Data and seed settings feed every phase: never."""
  section = key.split(".")[0]
  if key == "phases":
    return True
  if section not in REGISTRY:
    return False
  finished = bool(glob.glob(os.path.join(workdir, section, workdir_lib.RESULT)) or glob.glob(
      os.path.join(workdir, sweep.FOLDER_PREFIX + "*", section, workdir_lib.RESULT)))
  return not _started(workdir, section) or (".train." in key and not finished)


def _started(workdir: str, phase: str) -> bool:
  """A phase has started once it has written a file into its folder or saved a training step
  (checkpoints/teacher/<step>, checkpoints/refine_<block>/<step>, checkpoints/baseline_<kind>/
  <step>, ...). Empty folders, left by a run that failed before computing anything, do not count:
  the corrected command must be accepted."""
  prefix = workdir_lib.checkpoint_prefix(phase)
  roots = [workdir, *glob.glob(os.path.join(workdir, sweep.FOLDER_PREFIX + "*"))]
  steps = lambda root: [s for c in glob.glob(os.path.join(root, CHECKPOINTS, prefix + "*"))
                        for s in os.listdir(c) if s.isdigit()]
  return any(glob.glob(os.path.join(root, phase, "*")) or steps(root) for root in roots)


def _new_at_default(key: str, saved: dict, defaults: dict, current: dict) -> bool:
  """A key that a workdir made by an older version lacks is no difference while at its default."""
  lookup = lambda tree: _lookup(tree, key.split("."))
  default = lookup(defaults)
  return lookup(saved) is _MISSING and default is not _MISSING and lookup(current) == default


_MISSING = object()


def _lookup(tree, path: list[str]):
  for part in path:
    if not isinstance(tree, dict) or part not in tree:
      return _MISSING
    tree = tree[part]
  return tree


def _differences(a, b, prefix="") -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
    return out
  return [] if a == b else [prefix.rstrip(".")]


def make_context(cfg, workdir: str) -> RunContext:
  dataset = data.load_dataset(cfg.data)
  mesh = feed.make_mesh()
  shards = cfg.data.shards or jax.process_count()
  for section in ("teacher", "distill", "refine", "finetune", "baselines"):
    feed.check_batch_size(cfg[section].train.batch_size, mesh, f"config.{section}.train.batch_size",
                          shards)
  feed.check_batch_size(cfg.data.eval_batch_size, mesh, "config.data.eval_batch_size", shards)
  preprocess = feed.Preprocess.from_split(dataset.train, cfg.data.crop_padding, cfg.data.flip)
  if cfg.teacher.checkpoint:  # a loaded teacher keeps the normalization it was trained with
    preprocess = workdir_lib.saved_preprocess(cfg.teacher.checkpoint, preprocess)
  splits = {name: feed.DeviceSplit.create(getattr(dataset, name), mesh, shards)
            for name in ("train", "validation", "test")}
  logging.info("data: %d train / %d validation / %d test images of shape %s, %d classes; "
               "%d device(s) in %d process(es), %d data shard(s)", len(dataset.train),
               len(dataset.validation), len(dataset.test), dataset.image_shape, dataset.num_classes,
               mesh.size, jax.process_count(), shards)
  return RunContext(cfg, workdir, dataset, mesh, preprocess, splits, writer=_writer(workdir))


def _writer(workdir: str):
  if jax.process_index() > 0:
    return None
  # TensorBoard only (no TensorFlow needed): progress lines come from the training loop.
  return tensorboard_writer.ScalarWriter(os.path.join(workdir, "tensorboard"))


def _check_precision(cfg) -> None:
  """bf16 asked for on a backend that cannot convolve in it: one line before anything compiles."""
  sections = [s for s in config_keys.TRAIN_SECTIONS if cfg[s].train.precision == "bf16"]
  if not sections:
    return
  try:
    x = jax.numpy.ones((1, 4, 4, 1), jax.numpy.bfloat16)
    jax.block_until_ready(jax.lax.conv(x, jax.numpy.ones((1, 1, 3, 3), jax.numpy.bfloat16),
                                       (1, 1), "SAME"))
  except Exception as e:  # the backend's own error type
    raise UserError(f"config.{sections[0]}.train.precision='bf16' but the {jax.default_backend()} "
                    f"backend cannot run bfloat16 convolutions ({str(e).splitlines()[0][:120]}); "
                    "use 'f32'") from None


def run(cfg, workdir: str) -> dict:
  """Runs every configured phase; returns {phase: result}."""
  config_lib.validate(cfg)
  wanted = (*(cfg.report.runtimes if "report" in cfg.phases else ()),
            *((cfg.select.runtime,) if config_lib.needs_latency(cfg.select) else ()))
  if wanted:  # before hours of training, not after
    from compactkd_jax.deploy import runtimes
    runtimes.require(wanted)
  _check_precision(cfg)
  workdir = os.path.abspath(workdir)
  accepted = check_workdir(cfg, workdir)
  ctx = make_context(cfg, workdir)  # loads the data: a bad data setting fails before the claim
  claim_workdir(workdir, accepted)
  try:
    if not cfg.select.budgets:
      return {phase: _run_phase(ctx, phase) for phase in cfg.phases}
    return _run_sweep(ctx)
  finally:  # flush TensorBoard even when a phase stops with an error
    if ctx.writer is not None:
      ctx.writer.close()


def _run_sweep(ctx: RunContext) -> dict:
  """Shared phases once, the others per budget, then the sweep's summary."""
  cfg = ctx.cfg
  results = {p: _run_phase(ctx, p) for p in cfg.phases if p in workdir_lib.SHARED_PHASES}
  per_budget = [p for p in cfg.phases if p not in workdir_lib.SHARED_PHASES]
  if "select" in per_budget:  # an unreachable budget stops the sweep before any budget runs
    select_phase.check_budgets(ctx, cfg.select.budgets)
  folders = []
  for budget in cfg.select.budgets:
    folder = sweep.folder_name(cfg.select.metric, budget)
    folders.append(folder)
    bctx = ctx.for_budget(budget, folder)
    logging.info("[sweep] budget %s <= %g%s", cfg.select.metric, budget,
                 " of the teacher" if cfg.select.relative else "")
    results[folder] = {p: _run_phase(bctx, p) for p in per_budget}
  if "report" in per_budget:
    results["sweep"] = sweep.summarize(ctx, folders)
  return results


# Each phase's result records a digest of the results of every earlier phase it could have read
# (those on disk when it ran); a finished phase whose earlier results have changed since is stale.
INPUTS_KEY = "inputs_digest"


def _inputs_digest(ctx: RunContext, phase: str) -> str:
  digest = hashlib.sha256()
  for earlier in config_lib.PHASES[:config_lib.PHASES.index(phase)]:
    result = workdir_lib.read_result(ctx, earlier)
    if result is not None:
      digest.update(f"{earlier}:{json.dumps(result, sort_keys=True)}\n".encode())
  return digest.hexdigest()[:16]


def _outputs_from(ctx: RunContext, phase: str) -> list[str]:
  """The folders and training checkpoints of `phase` and every later phase, as they are on disk."""
  out = []
  for p in config_lib.PHASES[config_lib.PHASES.index(phase):]:
    out += [ctx.path(p)] if os.path.exists(ctx.path(p)) else []
    out += sorted(glob.glob(ctx.checkpoint_dir(workdir_lib.checkpoint_prefix(p) + "*")))
  return out


def _run_phase(ctx: RunContext, phase: str) -> dict:
  inputs = _inputs_digest(ctx, phase)
  done = ctx.read_json(phase, workdir_lib.RESULT)
  if done is not None:
    if done.get(INPUTS_KEY, inputs) != inputs:  # results of older versions carry no digest
      stale = _outputs_from(ctx, phase)
      raise UserError(f"[{phase}] was computed from other results than those in the workdir now "
                      f"(an earlier phase was redone); delete {' '.join(stale)} to recompute it "
                      "from the current ones")
    logging.info("[%s] already done, skipping (delete %s to redo it)", phase, ctx.path(phase))
    return done
  start = time.perf_counter()
  result = REGISTRY[phase](ctx)
  result.setdefault("wall_seconds", time.perf_counter() - start)
  result[INPUTS_KEY] = inputs
  ctx.write_json(result, phase, workdir_lib.RESULT)
  files.barrier(f"{phase} done")  # later phases of every process read what this one wrote
  logging.info("[%s] done: %s", phase, {k: v for k, v in result.items()
                                        if isinstance(v, (int, float, str))})
  return result
