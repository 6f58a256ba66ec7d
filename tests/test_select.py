"""Tests for compactkd_jax.knapsack: the knapsack solvers against brute force, and plan building."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compactkd_jax.errors import UserError
from compactkd_jax.knapsack import (InfeasibleBudget, damage_curve, make_plan, min_total_cost,
                                  solve_dp, solve_greedy, uniform_plan)

_DAMAGE = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def integer_instances(draw):
  """2-5 blocks, 1-4 candidates each, integer costs 0..20 and an integer budget."""
  num_blocks = draw(st.integers(2, 5))
  costs, damages = [], []
  for _ in range(num_blocks):
    size = draw(st.integers(1, 4))
    costs.append(np.array(draw(st.lists(st.integers(0, 20), min_size=size, max_size=size)),
                          dtype=np.float64))
    damages.append(np.array(draw(st.lists(_DAMAGE, min_size=size, max_size=size))))
  return costs, damages, draw(st.integers(0, 80))


@st.composite
def real_instances(draw):
  """Like integer_instances, with real costs, a real budget and any number of bins."""
  num_blocks = draw(st.integers(2, 5))
  cost = st.floats(0.0, 20.0, allow_nan=False, allow_infinity=False)
  costs, damages = [], []
  for _ in range(num_blocks):
    size = draw(st.integers(1, 4))
    costs.append(np.array(draw(st.lists(cost, min_size=size, max_size=size))))
    damages.append(np.array(draw(st.lists(_DAMAGE, min_size=size, max_size=size))))
  budget = draw(st.floats(0.0, 80.0, allow_nan=False, allow_infinity=False))
  return costs, damages, budget, draw(st.integers(1, 300))


def _cost(costs, plan):
  return sum(c[i] for c, i in zip(costs, plan))


def _damage(damages, plan):
  return sum(d[i] for d, i in zip(damages, plan))


def _brute_force(costs, damages, budget):
  """The least damage over all plans that fit, or None."""
  fits = [p for p in itertools.product(*(range(len(c)) for c in costs))
          if _cost(costs, p) <= budget]
  return min((_damage(damages, p) for p in fits), default=None)


@settings(max_examples=150, deadline=None)
@given(integer_instances())
def test_dp_matches_brute_force_with_unit_bins(instance):
  costs, damages, budget = instance
  best = _brute_force(costs, damages, budget)
  if best is None:
    with pytest.raises(InfeasibleBudget):
      solve_dp(costs, damages, budget, num_bins=max(budget, 1))
    return
  plan = solve_dp(costs, damages, budget, num_bins=max(budget, 1))
  assert _cost(costs, plan) <= budget
  assert abs(_damage(damages, plan) - best) <= 1e-9


@settings(max_examples=150, deadline=None)
@given(real_instances())
def test_dp_never_exceeds_budget_with_real_costs(instance):
  costs, damages, budget, num_bins = instance
  best = _brute_force(costs, damages, budget)
  try:
    plan = solve_dp(costs, damages, budget, num_bins=num_bins)
  except InfeasibleBudget:
    return  # Rounding up may lose every plan near the edge; that is allowed.
  assert best is not None
  assert _cost(costs, plan) <= budget
  assert _damage(damages, plan) >= best - 1e-9


@settings(max_examples=150, deadline=None)
@given(integer_instances())
def test_greedy_fits_and_is_never_better_than_dp(instance):
  costs, damages, budget = instance
  if _brute_force(costs, damages, budget) is None:
    with pytest.raises(InfeasibleBudget):
      solve_greedy(costs, damages, budget)
    return
  greedy = solve_greedy(costs, damages, budget)
  exact = solve_dp(costs, damages, budget, num_bins=max(budget, 1))
  assert _cost(costs, greedy) <= budget
  assert _damage(damages, greedy) >= _damage(damages, exact) - 1e-9


def test_dp_breaks_ties_by_cost_then_index():
  costs = [np.array([5.0, 3.0, 3.0]), np.array([1.0])]
  damages = [np.array([0.5, 0.5, 0.5]), np.array([0.0])]
  assert solve_dp(costs, damages, 10.0) == [1, 0]


def test_dp_finds_an_exact_fit_whose_costs_are_not_unit_multiples():
  # Rounding each cost up would overshoot by two units; the teacher-like plan must still fit.
  costs = [np.array([1000.0 / 3, 10.0]), np.array([2000.0 / 7, 1.0])]
  damages = [np.array([0.0, 1.0]), np.array([0.0, 1.0])]
  assert solve_dp(costs, damages, costs[0][0] + costs[1][0], num_bins=10) == [0, 0]


def test_zero_budget_takes_free_plan_or_fails():
  costs = [np.array([0.0, 2.0]), np.array([3.0, 0.0])]
  damages = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
  assert solve_dp(costs, damages, 0.0) == [0, 1]
  with pytest.raises(InfeasibleBudget):
    solve_dp([np.array([1.0])], [np.array([0.0])], 0.0)


def test_negative_budget_is_an_error():
  with pytest.raises(UserError):
    solve_dp([np.array([1.0])], [np.array([0.0])], -1.0)
  with pytest.raises(UserError):
    solve_greedy([np.array([1.0])], [np.array([0.0])], -1.0)


def test_min_total_cost_sums_block_minima():
  assert min_total_cost([np.array([3.0, 1.0]), np.array([2.0, 5.0])]) == 3.0


def test_dp_handles_a_large_instance():
  rng = np.random.default_rng(0)
  costs = [rng.uniform(1, 100, 15) for _ in range(60)]
  damages = [rng.uniform(0, 1, 15) for _ in range(60)]
  budget = 0.5 * sum(c.max() for c in costs)
  plan = solve_dp(costs, damages, budget)
  assert _cost(costs, plan) <= budget
  assert _damage(damages, plan) <= _damage(damages, solve_greedy(costs, damages, budget)) + 1e-9


# Three blocks: "keep" is the teacher block; the others are cheaper and worse.
_BLOCK_COSTS = {"stage1_block0": 1000.0, "stage2_block0": 2000.0, "stage3_block0": 3000.0}
_STEM, _HEAD, _ACC = 100.0, 50.0, 0.91
_TOTAL = _STEM + _HEAD + sum(_BLOCK_COSTS.values())
_SMALLEST = _STEM + _HEAD + 0.3 * sum(_BLOCK_COSTS.values())


def _costs(value):
  return {"flops": 2.0 * value, "macs": value, "params": value / 10.0}


def _scores():
  blocks = {}
  for name, cost in _BLOCK_COSTS.items():
    blocks[name] = {
        "keep": {"nmse": 0.0, "hybrid_accuracy": _ACC, **_costs(cost), "spec": {"kind": "keep"}},
        "dwsep": {"nmse": 0.2, "hybrid_accuracy": 0.85, **_costs(0.3 * cost),
                  "spec": {"kind": "dwsep"}},
        "shrink": {"nmse": 0.05, "hybrid_accuracy": 0.89, **_costs(0.6 * cost),
                   "spec": {"kind": "shrink"}},
    }
  return {
      "block_order": list(_BLOCK_COSTS),
      "teacher": {"val_accuracy": _ACC, "stem": _costs(_STEM), "head": _costs(_HEAD),
                  "blocks": {name: _costs(cost) for name, cost in _BLOCK_COSTS.items()},
                  "total": _costs(_TOTAL)},
      "blocks": blocks,
  }


@pytest.mark.parametrize("damage", ["accuracy", "mse"])
@pytest.mark.parametrize("solver", ["dp", "greedy"])
def test_full_budget_keeps_the_teacher(damage, solver):
  plan = make_plan(_scores(), "macs", 1.0, relative=True, damage=damage, solver=solver)
  assert set(plan["choice"].values()) == {"keep"}
  assert plan["cost"] == pytest.approx(_TOTAL)
  assert plan["predicted_damage"] == pytest.approx(0.0)
  assert [b["block"] for b in plan["blocks"]] == list(_BLOCK_COSTS)
  assert plan["blocks"][0]["teacher_cost"] == plan["blocks"][0]["cost"] == 1000.0
  json.dumps(plan)


def test_tighter_budget_fits_and_downgrades():
  plan = make_plan(_scores(), "flops", 0.6 * 2 * _TOTAL, relative=False)
  assert plan["cost"] <= plan["limit"]
  assert plan["relative_budget"] == pytest.approx(0.6)
  assert plan["predicted_damage"] > 0
  assert set(plan["choice"].values()) != {"keep"}


def test_infeasible_budget_names_the_smallest_cost():
  with pytest.raises(InfeasibleBudget) as info:
    make_plan(_scores(), "macs", 0.1, relative=True)
  message = str(info.value)
  assert f"{_SMALLEST:.6g}" in message
  assert f"{100 * _SMALLEST / _TOTAL:.1f}%" in message
  assert "\n" not in message


@pytest.mark.parametrize("kwargs", [
    {"metric": "macs", "budget": -5.0, "relative": False},
    {"metric": "macs", "budget": 0.0, "relative": True},
    {"metric": "macs", "budget": 1.5, "relative": True},
    {"metric": "macs", "budget": 2 * _TOTAL, "relative": False},
    {"metric": "latency", "budget": 0.5, "relative": True},
    {"metric": "macs", "budget": 0.5, "relative": True, "damage": "kl"},
    {"metric": "macs", "budget": 0.5, "relative": True, "solver": "ilp"},
])
def test_bad_arguments_raise_user_error(kwargs):
  with pytest.raises(UserError):
    make_plan(_scores(), **kwargs)


def test_uniform_plan_takes_one_candidate_everywhere_and_prices_it_by_hand():
  """Every block "shrink": cost stem + head + 0.6 of every block, damage the sum of the blocks'
  accuracy drops, computed here from the numbers the scores were built with."""
  plan = uniform_plan(_scores(), "macs", 0.7, True, "shrink")
  assert plan["choice"] == {name: "shrink" for name in _BLOCK_COSTS}
  assert plan["solver"] == "uniform"
  assert plan["cost"] == pytest.approx(_STEM + _HEAD + 0.6 * sum(_BLOCK_COSTS.values()))
  assert plan["predicted_damage"] == pytest.approx(3 * (_ACC - 0.89))
  assert [b["candidate"] for b in plan["blocks"]] == ["shrink"] * 3
  json.dumps(plan)


def test_uniform_plan_over_the_budget_names_its_cost_in_one_line():
  cost = _STEM + _HEAD + 0.6 * sum(_BLOCK_COSTS.values())
  with pytest.raises(InfeasibleBudget, match=f"at least {cost / _TOTAL:.6g}") as info:
    uniform_plan(_scores(), "macs", 0.5, True, "shrink")
  assert "\n" not in str(info.value)


def test_uniform_plan_with_a_candidate_a_block_lacks_is_a_user_error():
  scores = _scores()
  del scores["blocks"]["stage2_block0"]["shrink"]
  with pytest.raises(UserError, match="block 'stage2_block0' has no such candidate"):
    uniform_plan(scores, "macs", 0.9, True, "shrink")


def test_unknown_metric_lists_the_valid_ones():
  with pytest.raises(UserError, match="flops, macs, params, latency"):
    make_plan(_scores(), "energy", 0.5, relative=True)


def test_missing_field_is_a_user_error():
  scores = _scores()
  del scores["blocks"]["stage1_block0"]["dwsep"]["hybrid_accuracy"]
  with pytest.raises(UserError, match="hybrid_accuracy"):
    make_plan(scores, "macs", 0.5, relative=True)


@pytest.mark.parametrize("damage", ["accuracy", "mse"])
def test_damage_curve_equals_brute_force(damage):
  """Every point of the curve is the least damage of any plan within that budget, found by trying
  all 27 plans (infeasible points where no plan fits)."""
  scores = _scores()
  curve = damage_curve(scores, "params", damage=damage)
  assert len(curve) == 19
  blocks = scores["blocks"]
  fixed = scores["teacher"]["stem"]["params"] + scores["teacher"]["head"]["params"]
  plans = []
  for choice in itertools.product(*(blocks[b].items() for b in scores["block_order"])):
    cost = fixed + sum(c["params"] for _, c in choice)
    harm = sum(_ACC - c["hybrid_accuracy"] if damage == "accuracy" else c["nmse"]
               for _, c in choice)
    plans.append((cost, harm))
  for entry in curve:
    limit = entry["fraction"] * scores["teacher"]["total"]["params"]
    fitting = [harm for cost, harm in plans if cost <= limit + 1e-9]
    if not fitting:
      assert entry["predicted_damage"] is None and entry["cost"] is None
    else:
      assert entry["predicted_damage"] == pytest.approx(min(fitting)), entry
      assert entry["cost"] <= limit + 1e-9
  assert curve[0]["predicted_damage"] is None  # 10% fits no plan: the smallest keeps 30% + fixed
  json.dumps(curve)
