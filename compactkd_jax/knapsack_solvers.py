"""Multiple-choice knapsack solvers over plain arrays: one candidate per block, least total damage,
total cost within one budget.

`solve_dp` is exact for integer costs (a DP over costs discretized in budget / num_bins units that
keeps each state's true cost, so a plan never exceeds the budget); `solve_greedy` is the baseline
to compare it with. knapsack.py applies them to the distillation's scores.json; constraints.py
meets several limits at once with a MILP.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from compactkd_jax.errors import UserError

# A cost that is an exact multiple of the unit can divide to a hair above the integer in float;
# it must not be charged a whole extra unit for that.
_CEIL_RTOL = 1e-9
# Damages this close (relative) count as tied, so float summation order cannot decide a tie.
_TIE_RTOL = 1e-12


class InfeasibleBudget(UserError):
  """No plan fits the budget; the message names the smallest reachable cost."""


def _as_arrays(costs, damages) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Checks the menus and returns them as flat float64 arrays."""
  if len(costs) != len(damages):
    raise ValueError(f"{len(costs)} cost menus but {len(damages)} damage menus")
  cost_arrays, damage_arrays = [], []
  for block, (cost, damage) in enumerate(zip(costs, damages)):
    cost = np.asarray(cost, dtype=np.float64).reshape(-1)
    damage = np.asarray(damage, dtype=np.float64).reshape(-1)
    if cost.shape != damage.shape or cost.size == 0:
      raise ValueError(
          f"block {block}: {cost.size} costs and {damage.size} damages (need equal, > 0)")
    if not (np.isfinite(cost).all() and (cost >= 0).all()):
      raise ValueError(f"block {block}: costs must be finite and >= 0, got {cost}")
    if not np.isfinite(damage).all():
      raise ValueError(f"block {block}: damages must be finite, got {damage}")
    cost_arrays.append(cost)
    damage_arrays.append(damage)
  return cost_arrays, damage_arrays


def _check_budget(budget: float) -> None:
  if not (isinstance(budget, numbers.Real) and math.isfinite(budget) and budget >= 0):
    raise UserError(f"budget {budget} is not a finite number >= 0; set a non-negative cost budget")


def left_sum(values) -> float:
  """Sums left to right from 0.0: the order the DP and a brute force both use, so they agree."""
  total = 0.0
  for value in values:
    total += float(value)
  return total


def min_total_cost(costs: Sequence[np.ndarray]) -> float:
  """The cost of the cheapest plan: the sum of the per-block minimum costs."""
  return left_sum(np.min(np.asarray(cost, dtype=np.float64)) for cost in costs)


def plan_cost(costs: Sequence[np.ndarray], plan: Sequence[int]) -> float:
  return left_sum(cost[index] for cost, index in zip(costs, plan))


def _infeasible(budget: float, costs: Sequence[np.ndarray]) -> InfeasibleBudget:
  return InfeasibleBudget(
      f"budget {budget:.6g} is infeasible: the smallest reachable cost is "
      f"{min_total_cost(costs):.6g}; raise the budget")


def _discretize(cost: np.ndarray, budget: float, num_bins: int, size: int) -> np.ndarray:
  """Costs in whole units of budget / num_bins, rounded up; `size` means 'never fits'."""
  unit = budget / num_bins
  if unit == 0:
    # No unit exists; only free candidates fit.
    return np.where(cost == 0, 0, size).astype(np.int64)
  with np.errstate(over="ignore"):  # A subnormal unit: huge costs clip to 'never fits'.
    units = np.minimum(cost / unit, size)
  # Rounding up means a plan within num_bins units fits in true cost too.
  return np.ceil(units * (1.0 - _CEIL_RTOL)).astype(np.int64)


def _better(dmg, cost, ref_dmg, ref_cost) -> np.ndarray:
  """Where (dmg, cost) beats (ref_dmg, ref_cost): lower damage, or tied damage and lower cost."""
  tol = _TIE_RTOL * (1.0 + np.abs(np.where(np.isfinite(ref_dmg), ref_dmg, 0.0)))
  with np.errstate(invalid="ignore"):  # inf - inf: both unreachable, neither is better.
    tied = np.abs(dmg - ref_dmg) <= tol
  return (dmg < ref_dmg - tol) | (tied & (cost < ref_cost))


def _relax_block(prev_dmg, prev_cost, weights, costs, damages, budget):
  """Adds one block to the DP: the best state per bin and the candidate that reached it."""
  size = prev_dmg.size
  new_dmg = np.full(size, np.inf)
  new_cost = np.full(size, np.inf)
  pick = np.zeros(size, dtype=np.int32)
  # Ascending index with a strict comparison keeps the lower index on exact ties.
  for index, weight in enumerate(weights):
    if weight >= size:
      continue
    cand_dmg = np.full(size, np.inf)
    cand_cost = np.full(size, np.inf)
    cand_dmg[weight:] = prev_dmg[:size - weight] + damages[index]
    cand_cost[weight:] = prev_cost[:size - weight] + costs[index]
    better = _better(cand_dmg, cand_cost, new_dmg, new_cost)
    new_dmg = np.where(better, cand_dmg, new_dmg)
    new_cost = np.where(better, cand_cost, new_cost)
    pick[better] = index
  # Costs are >= 0, so a partial plan over the budget in true cost can never fit: drop it.
  new_dmg[new_cost > budget] = np.inf
  return new_dmg, new_cost, pick


def _final_bins(dmg: np.ndarray, cost: np.ndarray) -> np.ndarray:
  """The end bins holding the best plan (least damage, then least cost); empty when none fits."""
  fits = np.isfinite(dmg)
  if not fits.any():
    return np.zeros(0, dtype=np.int64)
  best = dmg[fits].min()
  tied = fits & (dmg <= best + _TIE_RTOL * (1.0 + abs(best)))
  return np.flatnonzero(tied & (cost == cost[tied].min()))


def _backtrack(picks: np.ndarray, weights: Sequence[np.ndarray], end_bin: int) -> list[int]:
  plan = []
  bin_ = int(end_bin)
  for block in reversed(range(len(weights))):
    index = int(picks[block, bin_])
    plan.append(index)
    bin_ -= int(weights[block][index])
  return plan[::-1]


def solve_dp(costs: Sequence[np.ndarray], damages: Sequence[np.ndarray], budget: float,
             num_bins: int = 4000) -> list[int]:
  """Least-damage plan with true total cost <= budget, by DP over costs in budget/num_bins units.

  Costs round up to whole units. The DP also tracks each state's true cost and drops states over
  the budget, and runs num_blocks bins past num_bins so that plans which fit in true cost but
  not after rounding (the teacher itself at a budget equal to its cost) are still found. The plan
  never exceeds the budget; it can miss the optimum only when two partial plans share a bin.
  With integer costs and unit 1 it is exact. Ties in damage go to the lower true cost, then to
  the lexicographically lower plan. Returns the chosen candidate index per block.
  """
  costs, damages = _as_arrays(costs, damages)
  _check_budget(budget)
  if int(num_bins) < 1:
    raise ValueError(f"num_bins must be >= 1, got {num_bins}")
  num_bins = int(num_bins)
  # Rounding up adds under one unit per block, so every plan that fits lies below this size.
  size = num_bins + len(costs) + 1
  weights = [_discretize(cost, budget, num_bins, size) for cost in costs]
  dmg = np.full(size, np.inf)
  total = np.full(size, np.inf)
  dmg[0] = total[0] = 0.0
  picks = np.zeros((len(costs), size), dtype=np.int32)
  for block in range(len(costs)):
    dmg, total, picks[block] = _relax_block(dmg, total, weights[block], costs[block],
                                            damages[block], budget)
  ends = _final_bins(dmg, total)
  if ends.size == 0:
    raise _infeasible(budget, costs)
  return min(_backtrack(picks, weights, end) for end in ends)


def _min_damage_index(cost: np.ndarray, damage: np.ndarray) -> int:
  """Least damage, then least cost, then lowest index."""
  return int(np.lexsort((np.arange(cost.size), cost, damage))[0])


def _best_downgrade(costs, damages, plan) -> tuple[int, int]:
  """The cheaper (block, candidate) with the least damage added per unit of cost saved."""
  best_key, best_move = None, None
  for block, (cost, damage) in enumerate(zip(costs, damages)):
    current = plan[block]
    for index in np.flatnonzero(cost < cost[current]):
      saved = cost[current] - cost[index]
      key = ((damage[index] - damage[current]) / saved, -saved, block, int(index))
      if best_key is None or key < best_key:
        best_key, best_move = key, (block, int(index))
  return best_move


def solve_greedy(costs: Sequence[np.ndarray], damages: Sequence[np.ndarray],
                 budget: float) -> list[int]:
  """Baseline: start from least damage per block, then apply the downgrade with the best
  damage-added / cost-saved ratio until the plan fits."""
  costs, damages = _as_arrays(costs, damages)
  _check_budget(budget)
  if min_total_cost(costs) > budget:
    raise _infeasible(budget, costs)
  plan = [_min_damage_index(cost, damage) for cost, damage in zip(costs, damages)]
  # Terminates: each move strictly lowers one block's cost, and the all-minimum plan fits.
  while plan_cost(costs, plan) > budget:
    block, index = _best_downgrade(costs, damages, plan)
    plan[block] = index
  return plan
