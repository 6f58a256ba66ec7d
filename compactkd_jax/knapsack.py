"""Choose one candidate replacement per block under a cost budget (multiple-choice knapsack).

Each block of the teacher has a menu of candidates, each with a cost (flops, macs or params) and
a predicted damage in the distillation phase's `scores.json`. `make_plan` finds the plan of least
total damage whose total cost fits the budget (with knapsack_solvers.py's exact DP, or its greedy
baseline), `uniform_plan` the plan of one candidate everywhere, `damage_curve` the predicted
trade-off across budgets.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, NamedTuple, Sequence

import numpy as np

from compactkd_jax.errors import UserError
from compactkd_jax.knapsack_solvers import (  # InfeasibleBudget, the solvers: re-exported
    InfeasibleBudget, left_sum, min_total_cost, plan_cost, solve_dp, solve_greedy)

METRICS = ("flops", "macs", "params", "latency")  # latency: ms, from deploy/latency_table.py
DAMAGES = ("accuracy", "mse")
SOLVERS = ("dp", "greedy")  # one budget; several limits at once: constraints.py (milp)

# make_plan's slack on the budget, relative to the teacher: stem + head + blocks can round
# differently from the teacher's total, and a relative budget of 1.0 must admit the teacher.
_PLAN_RTOL = 1e-12


_SOLVER_FNS: dict[str, Callable[..., list[int]]] = {"dp": solve_dp, "greedy": solve_greedy}


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


class _Problem(NamedTuple):
  """What every plan over scores.json is built from: the blocks, the costs outside them (stem and
  head), the absolute limit, and each block's menu (names, costs, damages)."""
  metric: str
  damage: str
  order: list[str]
  teacher_cost: float
  fixed: float
  limit: float
  names: list[list[str]]
  costs: list[np.ndarray]
  damages: list[np.ndarray]


def _problem(scores: dict, metric: str, budget: float, relative: bool, damage: str) -> _Problem:
  _check_name("metric", metric, METRICS)
  _check_name("damage", damage, DAMAGES)
  order = _block_order(scores)
  teacher_cost = _number(scores, ("teacher", "total", metric))
  if teacher_cost <= 0:
    raise UserError(f"scores.json gives the teacher a total {metric} of {teacher_cost}; "
                    "rerun the distill phase to regenerate it")
  fixed = (_number(scores, ("teacher", "stem", metric))
           + _number(scores, ("teacher", "head", metric)))
  limit = _limit(budget, relative, teacher_cost, metric)
  return _Problem(metric, damage, order, teacher_cost, fixed, limit,
                  *_menus(scores, order, metric, damage))


def make_plan(scores: dict, metric: str, budget: float, relative: bool,
              damage: str = "accuracy", solver: str = "dp") -> dict:
  """The least-damage plan whose total cost (stem + head + chosen blocks) fits the budget.

  `budget` is a fraction of the teacher's total cost when `relative`, else an absolute cost.
  Returns a JSON-serializable dict (see _plan); raises InfeasibleBudget when no plan fits.
  """
  _check_name("solver", solver, SOLVERS)
  p = _problem(scores, metric, budget, relative, damage)
  block_budget = p.limit - p.fixed + _PLAN_RTOL * p.teacher_cost
  try:
    if block_budget < 0:
      raise InfeasibleBudget("stem and head alone exceed the budget")
    picks = _SOLVER_FNS[solver](p.costs, p.damages, block_budget)
  except InfeasibleBudget:
    raise _plan_infeasible(p.limit, metric, p.fixed + min_total_cost(p.costs),
                           p.teacher_cost) from None
  return _plan(scores, p, solver, picks)


def uniform_plan(scores: dict, metric: str, budget: float, relative: bool, candidate: str,
                 damage: str = "accuracy") -> dict:
  """The plan in which every block takes `candidate` (the uniformly narrowed student, an ablation
  of the selection), in make_plan's format with solver "uniform"; raises InfeasibleBudget when it
  costs more than the budget, UserError when a block's menu lacks the candidate."""
  p = _problem(scores, metric, budget, relative, damage)
  missing = [(block, menu) for block, menu in zip(p.order, p.names) if candidate not in menu]
  if missing:
    raise UserError(f"config.select.uniform={candidate!r}: block {missing[0][0]!r} has no such "
                    f"candidate (its menu: {missing[0][1]}); name a candidate every block was "
                    "distilled with")
  plan = _plan(scores, p, "uniform", [menu.index(candidate) for menu in p.names])
  if plan["cost"] > p.limit + _PLAN_RTOL * p.teacher_cost:
    needed = plan["cost"] / p.teacher_cost if relative else plan["cost"]
    raise InfeasibleBudget(
        f"the uniform plan (every block {candidate!r}) costs {plan['cost']:.6g} {metric} "
        f"({plan['cost'] / p.teacher_cost:.2%} of the teacher), over the budget {p.limit:.6g}; "
        f"raise config.select.budget to at least {needed:.6g} or name a smaller candidate")
  return plan


def _plan(scores: dict, p: _Problem, solver: str, picks: Sequence[int]) -> dict:
  """The plan's JSON-serializable record: the choice per block, its cost and predicted damage."""
  return {
      "metric": p.metric,
      "limit": p.limit,
      "teacher_cost": p.teacher_cost,
      "relative_budget": p.limit / p.teacher_cost,
      "damage": p.damage,
      "solver": solver,
      "choice": {block: menu[index] for block, menu, index in zip(p.order, p.names, picks)},
      "cost": p.fixed + plan_cost(p.costs, picks),
      "predicted_damage": left_sum(dmg[index] for dmg, index in zip(p.damages, picks)),
      "blocks": _block_entries(scores, p.order, p.names, p.costs, picks, p.metric),
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
