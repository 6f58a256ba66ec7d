"""Equal total training cost: what our student cost to make, and how long a baseline may train for
the same price.

Our student costs its block-wise distillation (training and scoring), its refinement and its
fine-tune; the teacher is not counted (every method starts from it). In a budget sweep the whole
distillation is charged to every budget, as if each student had been made alone (conservative).
A baseline matched on total cost trains the number of steps that takes the same wall time on this
machine: its step time is measured once (after compilation, on a throwaway copy of its state) and the
step count is saved before training starts, so a resumed run trains exactly the same steps.
"""
import time

import jax
import jax.numpy as jnp

from compactkd_jax import workdir
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

# Steps timed after the compiling one to estimate a baseline's seconds per step.
CALIBRATION_STEPS = 10


def ours(ctx: RunContext) -> dict:
  """Wall seconds and images of every phase that made our student (the sweep's shared distill)."""
  distill = workdir.read_result(ctx, "distill")
  finetune = workdir.read_result(ctx, "finetune")
  if distill is None or finetune is None:
    raise UserError("equal-cost baselines need the distill and finetune phases finished first "
                    "(or set config.baselines.match='epochs')")
  refine = workdir.read_result(ctx, "refine") or {}
  seconds = {
      # Workdirs of older versions have only the phase's wall time.
      "distill": distill.get("train_seconds", distill.get("wall_seconds", 0.0)),
      "score": distill.get("score_seconds", 0.0),
      "refine": refine.get("wall_seconds", 0.0),
      "finetune": finetune["train_seconds"]}
  images = {"distill": distill.get("train_images", 0), "score": distill.get("score_images", 0),
            "refine": refine.get("images", 0), "finetune": finetune.get("images", 0)}
  overhead = seconds["distill"] + seconds["score"] + seconds["refine"]
  return {"seconds": seconds, "images": images, "total_seconds": sum(seconds.values()),
          "overhead_seconds": overhead,
          # The method's own overhead against one training of the student for the fine-tune's
          # epochs (what a baseline at equal fine-tune epochs costs): the paper's "negligible".
          "overhead_ratio": overhead / max(seconds["finetune"], 1e-9)}


def seconds_per_step(step_fn, batch_fn, state) -> float:
  """Mean wall time of one step over CALIBRATION_STEPS steps after the compiling one (the state
  is consumed: pass a throwaway copy)."""
  state, metrics = step_fn(state, batch_fn(0))  # compiles
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for s in range(1, CALIBRATION_STEPS + 1):
    state, metrics = step_fn(state, batch_fn(s))
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / CALIBRATION_STEPS


def throwaway_copy(tree):
  """A copy whose buffers the donating step may delete without touching the original."""
  return jax.tree.map(jnp.copy, tree)


def matched_steps(target_seconds: float, step_seconds: float) -> int:
  return max(1, int(round(target_seconds / max(step_seconds, 1e-9))))
