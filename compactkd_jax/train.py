"""The one training loop every phase runs: optimizer, jit-compiled steps over sharded index
batches, clu metrics, progress with steps/s and ETA, a NaN guard, orbax checkpoints and resume.

A phase supplies a pure step `(state, batch_indices) -> (state, metrics)` (jit-compiled, state
donated, everything else bound by the phase) and the loop does the rest. Because the batch stream is
a function of the step number (feed.train_indices), restoring the state restores the data position.
"""
import dataclasses
import math
import shutil
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from clu import metrics as clu_metrics
from flax.training import train_state

from compactkd_jax import compile_options
from compactkd_jax.errors import UserError


LOOP_SECONDS = "loop_seconds"


class TrainState(train_state.TrainState):
  batch_stats: Any = None


def num_steps(tcfg, train_size: int) -> int:
  if tcfg.steps > 0:
    return int(tcfg.steps)
  return max(1, int(math.ceil(tcfg.epochs * (train_size // tcfg.batch_size))))


def make_optimizer(tcfg, total_steps: int) -> optax.GradientTransformation:
  """SGD with Nesterov momentum, cosine decay (optional linear warm-up), L2 weight decay on all
  params added to the gradient, BN included, as in the PyTorch CIFAR recipes."""
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, tcfg.learning_rate, tcfg.warmup_steps, max(total_steps, tcfg.warmup_steps + 1)) \
      if tcfg.warmup_steps else optax.cosine_decay_schedule(tcfg.learning_rate, total_steps)
  return optax.chain(optax.add_decayed_weights(tcfg.weight_decay),
                     optax.sgd(schedule, momentum=tcfg.momentum or None, nesterov=tcfg.nesterov))


def create_state(variables: dict, tcfg, total_steps: int, apply_fn=None) -> TrainState:
  return TrainState.create(apply_fn=apply_fn, params=variables["params"],
                           batch_stats=variables.get("batch_stats", {}),
                           tx=make_optimizer(tcfg, total_steps))


@dataclasses.dataclass
class PriorWork:
  """Seconds that earlier, interrupted processes spent in a phase's loops up to the checkpoints this
  process resumed from. A phase adds them to its own wall time, so a resumed phase reports what it
  cost in all, as an uninterrupted one would (the equal-cost baselines are priced from it). Work
  after the last checkpoint, redone on resume, is not counted twice."""
  seconds: float = 0.0


@dataclasses.dataclass
class LoopConfig:
  """What the loop needs from a phase."""
  name: str
  total_steps: int
  step_fn: Callable[[TrainState, jax.Array], tuple[TrainState, dict]]
  batch_fn: Callable[[int], jax.Array]
  checkpoint_dir: str
  log_every: int = 50
  checkpoint_every: int = 200
  eval_every: int = 0
  eval_fn: Callable[[TrainState], dict] | None = None
  lr_hint: str = "learning_rate"  # the config key to name when the loss is not finite
  writer: Any = None
  prior: PriorWork | None = None  # collects the loop seconds of earlier processes, when resumed


def checkpoint_manager(directory: str, total_steps: int | None = None) -> ocp.CheckpointManager:
  """The loop's orbax manager. With `total_steps`, the directory's root metadata records the run
  length its checkpoints were made for (orbax writes it once, on the first manager)."""
  # max_to_keep=2 keeps one good fallback if the newest checkpoint turns out to be unreadable.
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
  metadata = None if total_steps is None else {"total_steps": int(total_steps)}
  return ocp.CheckpointManager(directory, options=options, metadata=metadata)


def _manager_for_run(spec: LoopConfig) -> ocp.CheckpointManager:
  """A manager whose checkpoints belong to a run of spec.total_steps steps. The schedule (cosine
  decay, warm-up) is a function of the run length, so resuming a checkpoint made for another length
  would silently train a mix of two runs: that is refused with the directory to delete. (An
  equal-cost baseline recalibrated to another step count is the common way to get there.)"""
  manager = checkpoint_manager(spec.checkpoint_dir, spec.total_steps)
  recorded = manager.metadata().custom_metadata.get("total_steps")
  if recorded is None or int(recorded) == spec.total_steps:
    return manager  # a new directory, or one written before run lengths were recorded
  if not manager.all_steps():  # nothing to lose: forget the old run's length
    manager.close()
    if jax.process_index() == 0:
      shutil.rmtree(spec.checkpoint_dir)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"reset {spec.checkpoint_dir}")
    return checkpoint_manager(spec.checkpoint_dir, spec.total_steps)
  manager.close()
  raise UserError(f"[{spec.name}] the checkpoints in {spec.checkpoint_dir} were made for a "
                  f"{int(recorded)}-step run but this run has {spec.total_steps} steps (its config "
                  f"or its matched cost changed); delete that folder to start this loop over, or "
                  f"rerun with the earlier settings to resume it")


def restore_latest(manager: ocp.CheckpointManager, state: TrainState, name: str) -> TrainState:
  """The newest readable checkpoint; an unreadable one is skipped with a warning, never loaded."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax raises many types for truncated or corrupt files
      logging.warning("[%s] checkpoint %d is unreadable (%s); trying an older one", name, step,
                      str(e).splitlines()[0][:200])
      continue
    if int(restored.step) != step:
      logging.warning("[%s] checkpoint %d holds step %d; ignoring it", name, step,
                      int(restored.step))
      continue
    logging.info("[%s] resumed from checkpoint at step %d", name, step)
    return restored
  return state


def _recorded_seconds(manager: ocp.CheckpointManager, step: int, name: str) -> float:
  """The loop seconds that checkpoint `step` records (0 for a fresh start)."""
  if step == 0:
    return 0.0
  recorded = manager.metadata(step).custom_metadata.get(LOOP_SECONDS)
  if recorded is None:  # written before checkpoints recorded their time
    logging.warning("[%s] checkpoint %d records no time: the seconds before it are not counted in "
                    "this phase's cost", name, step)
    return 0.0
  return float(recorded)


def _finite(metrics: dict) -> bool:
  return all(np.all(np.isfinite(v)) for v in metrics.values())


# Run at each checkpoint, a few times per loop: its compile is most of its cost.
@compile_options.jit_run_once
def _state_finite(params, batch_stats):
  leaves = jax.tree.leaves((params, batch_stats))
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def summarize(pending: list[dict]) -> dict[str, float]:
  """Averages a window of per-step metric dicts with clu's Average."""
  host = jax.device_get(pending)
  keys = list(host[0].keys())
  # clu builds a dataclass from the names, so they must be identifiers: use positions, map back.
  fields = {f"m{i}": k for i, k in enumerate(keys)}
  collection = clu_metrics.Collection.create(**{f: clu_metrics.Average.from_output(f)
                                                for f in fields})
  stacked = {f: np.asarray([m[k] for m in host], np.float32) for f, k in fields.items()}
  computed = collection.single_from_model_output(**stacked).compute()
  return {fields[f]: float(v) for f, v in computed.items()}


def run_loop(spec: LoopConfig, state: TrainState) -> TrainState:
  """Runs spec.step_fn from the last checkpoint to spec.total_steps; returns the final state."""
  manager = _manager_for_run(spec)
  state = restore_latest(manager, state, spec.name)
  start = int(state.step)
  earlier = _recorded_seconds(manager, start, spec.name)
  if spec.prior is not None:
    spec.prior.seconds += earlier
  pending, t_start, s_start = [], time.perf_counter(), start
  for step in range(start, spec.total_steps):
    state, metrics = spec.step_fn(state, spec.batch_fn(step))
    pending.append(metrics)
    done = step + 1
    last = done == spec.total_steps
    if done % spec.log_every == 0 or last or done % spec.checkpoint_every == 0:
      summary = summarize(pending)
      pending = []
      if not _finite(summary):
        manager.wait_until_finished()
        raise UserError(f"[{spec.name}] loss is not finite at step {done}; lower "
                        f"{spec.lr_hint} (checkpoints up to the last good step are kept)")
      rate = (done - s_start) / max(time.perf_counter() - t_start, 1e-9)
      _log_progress(spec, done, summary, rate)
      if spec.writer is not None:
        spec.writer.write_scalars(done, {f"{spec.name}/{k}": v for k, v in summary.items()})
    if spec.eval_fn and spec.eval_every and (done % spec.eval_every == 0) and not last:
      evaluated = spec.eval_fn(state)
      logging.info("[%s] step %d eval %s", spec.name, done, evaluated)
      if spec.writer is not None:  # the validation curve, to see whether training plateaued
        spec.writer.write_scalars(done, {f"{spec.name}/val_{k}": v for k, v in evaluated.items()
                                         if isinstance(v, (int, float))})
    if done % spec.checkpoint_every == 0 or last:
      # Weights can blow up steps before the loss does: never checkpoint a non-finite state.
      if not bool(_state_finite(state.params, state.batch_stats)):
        manager.wait_until_finished()
        raise UserError(f"[{spec.name}] weights are not finite at step {done}; lower "
                        f"{spec.lr_hint} (checkpoints up to the last good step are kept)")
      # Each checkpoint records the loop seconds behind it, across every process that ran them.
      manager.save(done, args=ocp.args.StandardSave(state),
                   custom_metadata={LOOP_SECONDS: earlier + time.perf_counter() - t_start})
  manager.wait_until_finished()  # async save: make the final checkpoint durable before returning
  manager.close()
  return state


def _log_progress(spec: LoopConfig, done: int, summary: dict, rate: float) -> None:
  eta = (spec.total_steps - done) / max(rate, 1e-9)
  shown = {k: v for k, v in summary.items() if "/" not in k} or summary
  text = " ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:6])
  logging.info("[%s] step %d/%d %s | %.2f steps/s ETA %s", spec.name, done, spec.total_steps,
               text, rate, _hms(eta))


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
