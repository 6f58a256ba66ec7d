"""Equal total training cost: what our student cost to make, and how long a baseline may train for
the same price.

Our student costs its block-wise distillation (training and scoring), its refinement and its
fine-tune; the teacher is not counted (every method starts from it). In a budget sweep the whole
distillation is charged to every budget, as if each student had been made alone (conservative).

A baseline matched on total cost trains the steps that cost what ours did, counted in units of our
own fine-tune step rather than in seconds: ours cost (total wall / fine-tune wall) x fine-tune steps
of its fine-tune step, a ratio taken within our own run; the baseline's step is then priced against
our fine-tune step by timing both side by side, in alternating rounds, after compiling both. A load
on the machine that differs between our run and the baselines' (another job on the cores), or that
comes and goes during the calibration, weighs on both sides of each ratio alike and cancels; timing
the baseline alone against our recorded seconds did not (a loaded calibration gave the baselines
half their steps). The loop's own per-step overhead (logging, checkpoints, the final evaluation) is
inside our fine-tune wall, so the baselines are charged it too. The step count is saved before
training starts, so a resumed run trains exactly the same steps.
"""
import time

import jax
import jax.numpy as jnp

from compactkd_jax import workdir
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

# Steps per timed round, and rounds per step function, after the compiling step. The rounds run
# in the order ours, baseline, baseline, ours, ...: a load that grows or fades steadily during the
# calibration weighs on both alike.
CALIBRATION_STEPS = 10
CALIBRATION_ROUNDS = 4


def ours(ctx: RunContext) -> dict:
  """Wall seconds and images of every phase that made our student (the sweep's shared distill)."""
  distill = workdir.read_result(ctx, "distill")
  finetune = workdir.read_result(ctx, "finetune")
  if distill is None or finetune is None:
    raise UserError("equal-cost baselines need the distill and finetune phases finished first "
                    "(or set config.baselines.match='epochs')")
  refine = workdir.read_result(ctx, "refine") or {}
  # Re-ranking plans (select.rerank) runs forward passes over the validation split: scoring too.
  select = workdir.read_result(ctx, "select") or {}
  seconds = {
      # Workdirs of older versions have only the phase's wall time.
      "distill": distill.get("train_seconds", distill.get("wall_seconds", 0.0)),
      "score": distill.get("score_seconds", 0.0) + select.get("rerank_seconds", 0.0),
      "refine": refine.get("wall_seconds", 0.0),
      "finetune": finetune["train_seconds"]}
  finetune_steps = finetune.get("steps", 0)
  images = {"distill": distill.get("train_images", 0),
            "score": distill.get("score_images", 0) + select.get("rerank_images", 0),
            "refine": refine.get("images", 0), "finetune": finetune.get("images", 0)}
  overhead = seconds["distill"] + seconds["score"] + seconds["refine"]
  total = sum(seconds.values())
  return {"seconds": seconds, "images": images, "total_seconds": total,
          "overhead_seconds": overhead,
          # Our whole cost in steps of our own fine-tune (a ratio within our run, load-free).
          "finetune_step_equivalents": total / max(seconds["finetune"], 1e-9) * finetune_steps,
          # The method's own overhead against one training of the student for the fine-tune's
          # epochs (what a baseline at equal fine-tune epochs costs): the paper's "negligible".
          "overhead_ratio": overhead / max(seconds["finetune"], 1e-9)}


def _timed(step_fn, batch_fn, state, first_step: int):
  """(state, seconds) of CALIBRATION_STEPS steps starting at batch `first_step`."""
  start = time.perf_counter()
  for s in range(first_step, first_step + CALIBRATION_STEPS):
    state, metrics = step_fn(state, batch_fn(s))
  jax.block_until_ready(metrics)
  return state, time.perf_counter() - start


def side_by_side_seconds(ours: tuple, baseline: tuple) -> tuple[float, float]:
  """Mean seconds per step of our fine-tune step and of a baseline's, each given as
  (step_fn, batch_fn, state), timed in alternating rounds after one compiling step each (the
  states are consumed: pass throwaway copies)."""
  runs = {}
  for name, (step_fn, batch_fn, state) in (("ours", ours), ("baseline", baseline)):
    state, metrics = step_fn(state, batch_fn(0))  # compiles
    jax.block_until_ready(metrics)
    runs[name] = [step_fn, batch_fn, state, 0.0]
  order = ("ours", "baseline")
  for r in range(CALIBRATION_ROUNDS):
    for name in (order if r % 2 == 0 else order[::-1]):
      step_fn, batch_fn, state, spent = runs[name]
      state, seconds = _timed(step_fn, batch_fn, state, 1 + r * CALIBRATION_STEPS)
      runs[name][2:] = [state, spent + seconds]
  timed = CALIBRATION_ROUNDS * CALIBRATION_STEPS
  return runs["ours"][3] / timed, runs["baseline"][3] / timed


def throwaway_copy(tree):
  """A copy whose buffers the donating step may delete without touching the original."""
  return jax.tree.map(jnp.copy, tree)


def matched_steps(cost: dict, ours_step_seconds: float, baseline_step_seconds: float) -> int:
  """The baseline steps that cost what our student did: our cost in our fine-tune steps
  (`ours(ctx)["finetune_step_equivalents"]`) times the baseline step's price in them."""
  price = baseline_step_seconds / max(ours_step_seconds, 1e-12)
  return max(1, int(round(cost["finetune_step_equivalents"] / max(price, 1e-12))))
