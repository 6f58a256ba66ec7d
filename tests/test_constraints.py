"""Several limits at once (compactkd_jax/constraints.py): the MILP's plan equals a brute force over
every plan on random menus with 1-3 metrics (least damage, every limit met), from plain arrays and
from scores.json; with one metric it agrees with the one-budget DP; an infeasible combination
names the limit that cannot be met, or says that the limits conflict, with the smallest costs."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from compactkd_jax import config as config_lib
from compactkd_jax import constraints, knapsack
from compactkd_jax.phases import select as select_phase
from compactkd_jax.errors import UserError

METRICS = ("flops", "macs", "params")


@st.composite
def instances(draw):
  blocks = draw(st.integers(1, 5))
  metrics = draw(st.lists(st.sampled_from(METRICS), min_size=1, max_size=3, unique=True))
  sizes = [draw(st.integers(1, 4)) for _ in range(blocks)]
  costs = {m: [np.array(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)), float)
               for n in sizes] for m in metrics}
  damages = [np.array(draw(st.lists(st.floats(-1, 1, allow_nan=False).map(lambda v: round(v, 3)),
                                    min_size=n, max_size=n))) for n in sizes]
  limits = {m: float(draw(st.integers(0, 30 * blocks))) for m in metrics}
  return costs, damages, limits


def _brute_force(costs, damages, limits):
  """(least damage, a plan) over every plan that meets every limit; (None, None) when none does."""
  best = (None, None)
  for plan in itertools.product(*(range(len(d)) for d in damages)):
    if all(sum(c[i] for c, i in zip(costs[m], plan)) <= limits[m] for m in limits):
      damage = sum(d[i] for d, i in zip(damages, plan))
      if best[0] is None or damage < best[0] - 1e-12:
        best = (damage, plan)
  return best


@settings(max_examples=300, deadline=None, derandomize=True)
@given(instances())
def test_milp_equals_brute_force(instance):
  costs, damages, limits = instance
  expected, _ = _brute_force(costs, damages, limits)
  plan = constraints.solve_milp(costs, damages, limits)
  if expected is None:
    assert plan is None
    return
  assert plan is not None
  for m, limit in limits.items():
    assert sum(c[i] for c, i in zip(costs[m], plan)) <= limit
  assert sum(d[i] for d, i in zip(damages, plan)) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(instances())
def test_excluding_found_plans_walks_the_brute_force_ranking(instance):
  """Cutting off each plan found gives the next best: the damages found in turn are the brute
  force's sorted damages of every feasible plan, each plan found once, until none is left."""
  costs, damages, limits = instance
  feasible = sorted(sum(d[i] for d, i in zip(damages, plan))
                    for plan in itertools.product(*(range(len(d)) for d in damages))
                    if all(sum(c[i] for c, i in zip(costs[m], plan)) <= limits[m] for m in limits))
  found = []
  for _ in range(min(len(feasible), 6)):
    plan = constraints.solve_milp(costs, damages, limits, exclude=found)
    assert plan is not None and plan not in found
    found.append(plan)
  assert [sum(d[i] for d, i in zip(damages, p)) for p in found] == pytest.approx(
      feasible[:len(found)], abs=1e-9)
  if len(found) == len(feasible):
    assert constraints.solve_milp(costs, damages, limits, exclude=found) is None


@settings(max_examples=100, deadline=None, derandomize=True)
@given(instances())
def test_one_metric_agrees_with_the_dp(instance):
  costs, damages, limits = instance
  metric = next(iter(limits))
  plan = constraints.solve_milp({metric: costs[metric]}, damages, {metric: limits[metric]})
  try:
    dp = knapsack.solve_dp(costs[metric], damages, limits[metric],
                         num_bins=max(1, int(limits[metric])))
  except knapsack.InfeasibleBudget:
    assert plan is None
    return
  assert sum(d[i] for d, i in zip(damages, plan)) == pytest.approx(
      sum(d[i] for d, i in zip(damages, dp)), abs=1e-9)


def _scores(menus):
  """scores.json for blocks whose candidates have the given (flops, macs, params, damage); the
  first candidate of each block is `keep`."""
  stem = {"flops": 10.0, "macs": 5.0, "params": 3.0}
  blocks, teacher_blocks = {}, {}
  for b, menu in enumerate(menus):
    name = f"block{b}"
    blocks[name] = {("keep" if i == 0 else f"c{i}"): {
        "flops": f, "macs": m, "params": p, "hybrid_accuracy": 0.9 - d, "nmse": d, "spec": None}
        for i, (f, m, p, d) in enumerate(menu)}
    teacher_blocks[name] = dict(zip(METRICS, menu[0][:3]))
  total = {k: 2 * stem[k] + sum(t[k] for t in teacher_blocks.values()) for k in METRICS}
  return {"block_order": list(blocks),
          "teacher": {"val_accuracy": 0.9, "stem": stem, "head": stem, "blocks": teacher_blocks,
                      "total": total},
          "blocks": blocks}


@st.composite
def scored_menus(draw):
  menus = []
  for _ in range(draw(st.integers(1, 4))):
    keep = (draw(st.integers(20, 40)), draw(st.integers(10, 20)), draw(st.integers(5, 10)), 0.0)
    others = [(draw(st.integers(0, keep[0])), draw(st.integers(0, keep[1])),
               draw(st.integers(0, keep[2])), draw(st.integers(0, 100)) / 1000)
              for _ in range(draw(st.integers(0, 3)))]
    menus.append([tuple(map(float, keep[:3])) + (0.0,), *[tuple(map(float, o)) for o in others]])
  fractions = {m: draw(st.floats(0.2, 1.0)) for m in draw(
      st.lists(st.sampled_from(METRICS), min_size=1, max_size=3, unique=True))}
  return menus, fractions


@settings(max_examples=150, deadline=None, derandomize=True)
@given(scored_menus())
def test_plan_from_scores_equals_brute_force(case):
  menus, fractions = case
  scores = _scores(menus)
  total, fixed = scores["teacher"]["total"], {m: 2 * scores["teacher"]["stem"][m] for m in METRICS}
  limits = {m: f * total[m] - fixed[m] + 1e-12 * total[m] for m, f in fractions.items()}
  costs = {m: [np.array([c[METRICS.index(m)] for c in menu]) for menu in menus] for m in METRICS}
  damages = [np.array([c[3] for c in menu]) for menu in menus]
  expected, _ = _brute_force(costs, damages, limits)
  try:
    plan = constraints.make_plan(scores, fractions, relative=True, damage="mse")
  except constraints.InfeasibleConstraints as e:
    assert expected is None and "\n" not in str(e)
    return
  assert expected is not None
  assert plan["predicted_damage"] == pytest.approx(expected, abs=1e-9)
  for m, c in plan["constraints"].items():
    assert c["cost"] <= c["limit"] * (1 + 1e-12)


def test_a_limit_below_its_own_minimum_is_named():
  scores = _scores([[(40, 20, 10, 0), (10, 5, 9, 0.1)], [(40, 20, 10, 0), (20, 2, 9, 0.1)]])
  with pytest.raises(constraints.InfeasibleConstraints, match=r"constraint params <= 5\.2 "
                     r"\(smallest reachable 24, 92\.3% of the teacher\) cannot be met"):
    constraints.make_plan(scores, {"macs": 0.9, "params": 0.2}, relative=True)


def test_limits_that_conflict_are_reported_together():
  # Cutting MACs needs c1, whose params exceed the params limit; each limit alone is reachable.
  scores = _scores([[(40, 20, 10, 0), (10, 2, 20, 0.1), (40, 20, 5, 0.1)]])
  with pytest.raises(constraints.InfeasibleConstraints, match="cannot be met together") as e:
    constraints.make_plan(scores, {"macs": 0.5, "params": 0.75}, relative=True)
  assert "macs <= " in str(e.value) and "params <= " in str(e.value)


def _select_config(**constraint_values):
  """The default `select` section (so it cannot drift from the real keys), with these limits."""
  s = config_lib.default_config().select
  s.metric, s.budget, s.damage = "macs", 0.9, "mse"
  s.constraints.update(constraint_values)
  return s


def test_rerank_with_a_latency_limit_is_one_line():
  cfg = config_lib.default_config()
  cfg.select.rerank, cfg.select.metric = 3, "latency"
  with pytest.raises(UserError, match="set config.select.rerank=1") as e:
    config_lib.validate(cfg)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("setting", [{"uniform": "inner_9"}, {"uniform": "slim_0.5", "rerank": 2},
                                     {"uniform": "slim_0.5", "metric": "latency"}])
def test_uniform_with_what_it_cannot_take_is_one_line(setting):
  cfg = config_lib.default_config()
  cfg.select.update(setting)
  with pytest.raises(UserError, match="config.select.uniform") as e:
    config_lib.validate(cfg)
  assert "\n" not in str(e.value)


def test_select_phase_takes_the_uniform_plan_and_no_solver():
  """select.uniform: the phase's plan is that candidate in every block, even where the DP would
  choose otherwise at the same budget."""
  scores = _scores([[(40, 20, 10, 0), (10, 5, 9, 0.1), (40, 19, 2, 0.05)],
                    [(40, 20, 10, 0), (20, 2, 9, 0.1), (30, 18, 3, 0.02)]])
  s = _select_config()
  s.budget = 0.8
  dp = select_phase.make_plan(scores, s, 0.8)
  s.uniform = "c1"  # every block: 17 MACs of the 40 allowed, damage 0.2
  plan = select_phase.make_plan(scores, s, 0.8)
  assert plan["solver"] == "uniform" and set(plan["choice"].values()) == {s.uniform}
  assert plan["choice"] != dp["choice"]


def test_budget_and_constraints_meet_together():
  """The budget is one limit among the constraints: the plan meets both, and it is the plan the
  brute force picks; without constraints the one-budget DP answers."""
  scores = _scores([[(40, 20, 10, 0), (10, 5, 9, 0.1), (40, 19, 2, 0.05)],
                    [(40, 20, 10, 0), (20, 2, 9, 0.1), (30, 18, 3, 0.02)]])
  plan = select_phase.make_plan(scores, _select_config(params=0.5), 0.95)
  assert plan["solver"] == "milp" and set(plan["constraints"]) == {"macs", "params"}
  assert plan["constraints"]["params"]["cost"] <= plan["constraints"]["params"]["limit"]
  assert plan["choice"] == {"block0": "c2", "block1": "c2"}
  assert select_phase.make_plan(scores, _select_config(), 0.9)["solver"] == "dp"
  with pytest.raises(UserError, match="answers one budget only"):
    s = _select_config(params=0.5)
    s.solver = "greedy"
    select_phase.make_plan(scores, s, 0.9)
