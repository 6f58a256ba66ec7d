"""Several limits at once: one plan that meets every one of them (e.g. MACs <= 50% AND params <= 30%
of the teacher), the multiple-choice knapsack with one capacity per metric, solved exactly as a
0-1 integer program by scipy's `milp` (HiGHS) rather than by growing the one-budget DP of
knapsack_solvers.py.

Variables x[b, i] in {0, 1}: block b takes candidate i. One candidate per block (sum_i x[b, i] = 1);
per metric m, stem + head + sum_{b,i} cost_m[b, i] x[b, i] <= limit_m; minimize the summed
predicted damage. A brute-force test and the one-budget solvers (knapsack_solvers.py) check it.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import optimize

from compactkd_jax import knapsack, knapsack_solvers
from compactkd_jax.errors import UserError

# Rows are scaled to limit 1 and tightened by this much, so that HiGHS's feasibility tolerance
# cannot admit a plan a hair over a limit; the plan is then checked in exact arithmetic.
_TIGHTEN = 1e-9


class InfeasibleConstraints(knapsack_solvers.InfeasibleBudget):
  """No plan meets every limit; the message names the limits and the smallest reachable costs."""


def solve_milp(costs: Mapping[str, Sequence[np.ndarray]], damages: Sequence[np.ndarray],
               limits: Mapping[str, float],
               exclude: Sequence[Sequence[int]] = ()) -> list[int] | None:
  """The least-damage plan (candidate index per block) whose summed cost per metric is within
  `limits[metric]` for every metric, other than the plans in `exclude`; None when none is."""
  blocks = len(damages)
  sizes = [len(np.asarray(d).reshape(-1)) for d in damages]
  starts = np.concatenate([[0], np.cumsum(sizes)])
  one_per_block = np.zeros((blocks, starts[-1]))
  for b in range(blocks):
    one_per_block[b, starts[b]:starts[b + 1]] = 1.0
  rows, upper = [], []
  for metric, limit in limits.items():
    row = np.concatenate([np.asarray(c, np.float64).reshape(-1) for c in costs[metric]])
    scale = max(abs(limit), 1.0)
    rows.append(row / scale)
    upper.append(limit / scale - _TIGHTEN)
  parts = [optimize.LinearConstraint(one_per_block, 1.0, 1.0)]
  # A plan is cut off by asking that at most blocks - 1 of its choices be taken again.
  for other in exclude:
    cut = np.zeros(starts[-1])
    cut[[starts[b] + int(i) for b, i in enumerate(other)]] = 1.0
    parts.append(optimize.LinearConstraint(cut, -np.inf, blocks - 1))
  if rows:
    parts.append(optimize.LinearConstraint(np.array(rows), -np.inf, np.array(upper)))
  result = optimize.milp(np.concatenate([np.asarray(d, np.float64).reshape(-1) for d in damages]),
                         constraints=parts, integrality=np.ones(starts[-1]),
                         bounds=optimize.Bounds(0.0, 1.0), options={"mip_rel_gap": 0.0})
  if result.status != 0 or result.x is None:
    return None
  plan = [int(np.argmax(result.x[starts[b]:starts[b + 1]])) for b in range(blocks)]
  for metric, limit in limits.items():  # exact check of what the solver returned
    if knapsack_solvers.left_sum(c[i] for c, i in zip(costs[metric], plan)) > limit:
      return None
  return plan


def _limits(scores: dict, wanted: Mapping[str, float], relative: bool) -> dict[str, dict]:
  out = {}
  for metric, value in wanted.items():
    teacher = knapsack._number(scores, ("teacher", "total", metric))
    fixed = (knapsack._number(scores, ("teacher", "stem", metric))
             + knapsack._number(scores, ("teacher", "head", metric)))
    limit = knapsack._limit(value, relative, teacher, metric)
    out[metric] = {"limit": limit, "teacher_cost": teacher, "fixed": fixed}
  return out


def make_plan(scores: dict, limits: Mapping[str, float], relative: bool,
              damage: str = "accuracy", exclude: Sequence[Mapping[str, str]] = ()) -> dict:
  """The least-damage plan meeting every limit (metric -> fraction of the teacher when
  `relative`, else an absolute cost), other than the plans whose `choice` (block -> candidate) is
  in `exclude`. Raises InfeasibleConstraints naming what cannot be met."""
  if not limits:
    raise UserError("no constraints given; set at least one of config.select.constraints")
  for metric in limits:
    knapsack._check_name("metric", metric, knapsack.METRICS)
  knapsack._check_name("damage", damage, knapsack.DAMAGES)
  order = knapsack._block_order(scores)
  info = _limits(scores, limits, relative)
  menus = {m: knapsack._menus(scores, order, m, damage) for m in info}
  names, _, damages = next(iter(menus.values()))
  costs = {m: menus[m][1] for m in info}
  slack = {m: info[m]["limit"] - info[m]["fixed"] + knapsack._PLAN_RTOL * info[m]["teacher_cost"]
           for m in info}
  excluded = [[menu.index(choice[block]) for block, menu in zip(order, names)]
              for choice in exclude]
  plan = solve_milp(costs, damages, slack, excluded)
  if plan is None:
    if excluded:
      raise InfeasibleConstraints(f"no plan meets the limits other than the {len(excluded)} "
                                  "already found")
    raise _infeasible(info, costs)
  metric = next(iter(info))
  cost_of = lambda m: info[m]["fixed"] + knapsack_solvers.plan_cost(costs[m], plan)
  return {
      "metric": metric, "limit": info[metric]["limit"],
      "teacher_cost": info[metric]["teacher_cost"],
      "relative_budget": info[metric]["limit"] / info[metric]["teacher_cost"],
      "damage": damage, "solver": "milp",
      "constraints": {m: {"limit": info[m]["limit"], "cost": cost_of(m),
                          "teacher_cost": info[m]["teacher_cost"]} for m in info},
      "choice": {block: menu[i] for block, menu, i in zip(order, names, plan)},
      "cost": cost_of(metric),
      "predicted_damage": knapsack_solvers.left_sum(d[i] for d, i in zip(damages, plan)),
      "blocks": knapsack._block_entries(scores, order, names, costs[metric], plan, metric),
  }


def _infeasible(info: dict, costs: dict) -> InfeasibleConstraints:
  """Names each limit below its own smallest reachable cost; when each alone is reachable, says
  that they conflict and gives every smallest reachable cost."""
  smallest = {m: info[m]["fixed"] + knapsack_solvers.min_total_cost(costs[m]) for m in info}
  describe = lambda m: (f"{m} <= {info[m]['limit']:.6g} (smallest reachable {smallest[m]:.6g}, "
                        f"{100 * smallest[m] / info[m]['teacher_cost']:.1f}% of the teacher)")
  alone = [m for m in info if smallest[m] > info[m]["limit"] * (1 + knapsack._PLAN_RTOL)]
  if alone:
    return InfeasibleConstraints(f"constraint {'; '.join(describe(m) for m in alone)} cannot be "
                                 "met; raise it in config.select.constraints")
  return InfeasibleConstraints(f"the constraints cannot be met together: "
                               f"{'; '.join(describe(m) for m in info)}; raise one of them")
