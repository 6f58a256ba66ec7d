"""Choose one candidate replacement per block under a cost budget (multiple-choice knapsack).

Each block of the teacher has a menu of candidates, each with a cost (flops, macs or params) and
a predicted damage. `solve_dp` finds the plan of least total damage whose total cost fits the
budget; `solve_greedy` is a baseline to compare it with; `make_plan` and `damage_curve` apply
them to the `scores.json` of the distillation phase.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np

from compactkd_jax.errors import UserError

METRICS = ("flops", "macs", "params", "latency")  # latency: ms, from deploy/latency_table.py
DAMAGES = ("accuracy", "mse")
SOLVERS = ("dp", "greedy")  # one budget; several limits at once: constraints.py (milp)

# A cost that is an exact multiple of the unit can divide to a hair above the integer in float;
# it must not be charged a whole extra unit for that.
_CEIL_RTOL = 1e-9
# Damages this close (relative) count as tied, so float summation order cannot decide a tie.
_TIE_RTOL = 1e-12
# make_plan's slack on the budget, relative to the teacher: stem + head + blocks can round
# differently from the teacher's total, and a relative budget of 1.0 must admit the teacher.
_PLAN_RTOL = 1e-12


class InfeasibleBudget(UserError):
  """No plan fits the budget; the message names the smallest reachable cost."""


# ----------------------------------------------------------------------------------------------
# Solvers over plain arrays.
# ----------------------------------------------------------------------------------------------


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


def _left_sum(values) -> float:
  """Sums left to right from 0.0: the order the DP and a brute force both use, so they agree."""
  total = 0.0
  for value in values:
    total += float(value)
  return total


def min_total_cost(costs: Sequence[np.ndarray]) -> float:
  """The cost of the cheapest plan: the sum of the per-block minimum costs."""
  return _left_sum(np.min(np.asarray(cost, dtype=np.float64)) for cost in costs)


def _plan_cost(costs: Sequence[np.ndarray], plan: Sequence[int]) -> float:
  return _left_sum(cost[index] for cost, index in zip(costs, plan))


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
  while _plan_cost(costs, plan) > budget:
    block, index = _best_downgrade(costs, damages, plan)
    plan[block] = index
  return plan


_SOLVER_FNS: dict[str, Callable[..., list[int]]] = {"dp": solve_dp, "greedy": solve_greedy}


# ----------------------------------------------------------------------------------------------
# Plans over scores.json.
# ----------------------------------------------------------------------------------------------


def _check_name(kind: str, value: str, valid: Sequence[str]) -> None:
  if value not in valid:
    raise UserError(f"unknown {kind} {value!r}; use one of {', '.join(valid)}")


def _number(scores: dict, path: Sequence[str]) -> float:
  """The finite number at `path` in scores.json, or a UserError naming the missing path."""
  node = scores
  for key in path:
    node = node.get(key) if isinstance(node, dict) else None
  if isinstance(node, bool) or not isinstance(node, numbers.Real) or not math.isfinite(node):
    raise UserError(f"scores.json has no finite number at {'.'.join(path)}; "
                    "rerun the distill phase to regenerate it")
  return float(node)


def _block_order(scores: dict) -> list[str]:
  order = scores.get("block_order") if isinstance(scores, dict) else None
  if not isinstance(order, list):
    raise UserError("scores.json has no block_order list; rerun the distill phase to regenerate it")
  for block in order:
    menu = scores.get("blocks", {}).get(block)
    if not isinstance(menu, dict) or not menu:
      raise UserError(f"scores.json has no candidates for block {block!r}; "
                      "rerun the distill phase to regenerate it")
  return order


def _block_damage(scores: dict, block: str, name: str, damage: str) -> float:
  path = ("blocks", block, name)
  if damage == "mse":
    return _number(scores, (*path, "nmse"))
  return (_number(scores, ("teacher", "val_accuracy"))
          - _number(scores, (*path, "hybrid_accuracy")))


def _menus(scores: dict, order: Sequence[str], metric: str, damage: str):
  """Per block: candidate names (sorted, for determinism), their costs and their damages."""
  names, costs, damages = [], [], []
  for block in order:
    menu = sorted(scores["blocks"][block])
    cost = np.array([_number(scores, ("blocks", block, name, metric)) for name in menu])
    if (cost < 0).any():
      raise UserError(f"scores.json has a negative {metric} in block {block!r}; "
                      "rerun the distill phase to regenerate it")
    names.append(menu)
    costs.append(cost)
    damages.append(np.array([_block_damage(scores, block, name, damage) for name in menu]))
  return names, costs, damages


def _limit(budget: float, relative: bool, teacher_cost: float, metric: str) -> float:
  """The absolute cost limit for the whole network, checked against the teacher."""
  if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not math.isfinite(budget):
    raise UserError(f"budget {budget!r} is not a number; set config.select.budget to a number")
  if budget <= 0:
    raise UserError(f"budget {budget} is not positive; set config.select.budget to a fraction in "
                    f"(0, 1] (relative) or a positive {metric} count")
  if relative:
    if budget > 1.0:
      raise UserError(f"relative budget {budget}: a relative budget above 1.0 is above the "
                      "teacher; set config.select.budget to at most 1.0")
    return float(budget) * teacher_cost
  if budget > teacher_cost:
    raise UserError(f"budget {budget:.6g} {metric} is above the teacher's {teacher_cost:.6g} "
                    f"{metric}; lower config.select.budget")
  return float(budget)


def _plan_infeasible(limit, metric, smallest, teacher_cost) -> InfeasibleBudget:
  return InfeasibleBudget(
      f"budget {limit:.6g} {metric} is infeasible: the smallest reachable cost is "
      f"{smallest:.6g} {metric} ({100.0 * smallest / teacher_cost:.1f}% of the teacher); "
      "raise config.select.budget")


def _optional_float(value):
  return None if value is None else float(value)


def _block_entries(scores, order, names, costs, picks, metric) -> list[dict]:
  entries = []
  for block, menu, cost, index in zip(order, names, costs, picks):
    candidate = scores["blocks"][block][menu[index]]
    entries.append({
        "block": block,
        "candidate": menu[index],
        "teacher_cost": _number(scores, ("teacher", "blocks", block, metric)),
        "cost": float(cost[index]),
        "nmse": _optional_float(candidate.get("nmse")),
        "hybrid_accuracy": _optional_float(candidate.get("hybrid_accuracy")),
        "spec": candidate.get("spec"),
    })
  return entries


def make_plan(scores: dict, metric: str, budget: float, relative: bool,
              damage: str = "accuracy", solver: str = "dp") -> dict:
  """The least-damage plan whose total cost (stem + head + chosen blocks) fits the budget.

  `budget` is a fraction of the teacher's total cost when `relative`, else an absolute cost.
  Returns a JSON-serializable dict (see the keys below); raises InfeasibleBudget when no plan fits.
  """
  _check_name("metric", metric, METRICS)
  _check_name("damage", damage, DAMAGES)
  _check_name("solver", solver, SOLVERS)
  order = _block_order(scores)
  teacher_cost = _number(scores, ("teacher", "total", metric))
  if teacher_cost <= 0:
    raise UserError(f"scores.json gives the teacher a total {metric} of {teacher_cost}; "
                    "rerun the distill phase to regenerate it")
  fixed = (_number(scores, ("teacher", "stem", metric))
           + _number(scores, ("teacher", "head", metric)))
  limit = _limit(budget, relative, teacher_cost, metric)
  names, costs, damages = _menus(scores, order, metric, damage)
  block_budget = limit - fixed + _PLAN_RTOL * teacher_cost
  try:
    if block_budget < 0:
      raise InfeasibleBudget("stem and head alone exceed the budget")
    picks = _SOLVER_FNS[solver](costs, damages, block_budget)
  except InfeasibleBudget:
    raise _plan_infeasible(limit, metric, fixed + min_total_cost(costs), teacher_cost) from None
  return _plan(scores, metric, limit, teacher_cost, damage, solver, picks)


def uniform_plan(scores: dict, metric: str, budget: float, relative: bool, candidate: str,
                 damage: str = "accuracy") -> dict:
  """The plan in which every block takes `candidate` (the uniformly narrowed student, an ablation
  of the selection), in make_plan's format with solver "uniform"; raises InfeasibleBudget when it
  costs more than the budget, UserError when a block's menu lacks the candidate."""
  _check_name("metric", metric, METRICS)
  _check_name("damage", damage, DAMAGES)
  order = _block_order(scores)
  teacher_cost = _number(scores, ("teacher", "total", metric))
  limit = _limit(budget, relative, teacher_cost, metric)
  missing = [block for block in order if candidate not in scores["blocks"][block]]
  if missing:
    raise UserError(f"config.select.uniform={candidate!r}: block {missing[0]!r} has no such "
                    f"candidate (its menu: {sorted(scores['blocks'][missing[0]])}); name a "
                    "candidate every block was distilled with")
  names = [sorted(scores["blocks"][block]) for block in order]
  plan = _plan(scores, metric, limit, teacher_cost, damage, "uniform",
               [menu.index(candidate) for menu in names])
  if plan["cost"] > limit + _PLAN_RTOL * teacher_cost:
    needed = plan["cost"] / teacher_cost if relative else plan["cost"]
    raise InfeasibleBudget(
        f"the uniform plan (every block {candidate!r}) costs {plan['cost']:.6g} {metric} "
        f"({plan['cost'] / teacher_cost:.2%} of the teacher), over the budget {limit:.6g}; raise "
        f"config.select.budget to at least {needed:.6g} or name a smaller candidate")
  return plan


def _plan(scores: dict, metric: str, limit: float, teacher_cost: float, damage: str, solver: str,
          picks: Sequence[int]) -> dict:
  """The plan's JSON-serializable record: the choice per block, its cost and predicted damage."""
  order = _block_order(scores)
  names, costs, damages = _menus(scores, order, metric, damage)
  fixed = (_number(scores, ("teacher", "stem", metric))
           + _number(scores, ("teacher", "head", metric)))
  return {
      "metric": metric,
      "limit": limit,
      "teacher_cost": teacher_cost,
      "relative_budget": limit / teacher_cost,
      "damage": damage,
      "solver": solver,
      "choice": {block: menu[index] for block, menu, index in zip(order, names, picks)},
      "cost": fixed + _plan_cost(costs, picks),
      "predicted_damage": _left_sum(dmg[index] for dmg, index in zip(damages, picks)),
      "blocks": _block_entries(scores, order, names, costs, picks, metric),
  }


def damage_curve(scores: dict, metric: str, damage: str = "accuracy",
                 fractions: Sequence[float] = tuple(np.linspace(0.1, 1.0, 19)),
                 solver: str = "dp") -> list[dict]:
  """Best predicted damage and cost at each relative budget, for a trade-off plot.

  Entries follow `fractions`; infeasible ones have cost and predicted_damage None.
  """
  results = {}
  best = None
  # A plan that fits a smaller budget fits every larger one; carrying it forward keeps the
  # curve monotone even where the DP's rounding (its unit scales with the budget) does worse.
  for fraction in sorted(set(float(f) for f in fractions)):
    try:
      plan = make_plan(scores, metric, fraction, True, damage=damage, solver=solver)
      if best is None or plan["predicted_damage"] < best[1]:
        best = (plan["cost"], plan["predicted_damage"])
    except InfeasibleBudget:
      pass
    results[fraction] = best
  return [{"fraction": float(f),
           "cost": None if results[float(f)] is None else results[float(f)][0],
           "predicted_damage": None if results[float(f)] is None else results[float(f)][1]}
          for f in fractions]
