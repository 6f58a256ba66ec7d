"""The select phase (design stage 5): one candidate per block under the budget (and every limit
of config.select.constraints), into `<workdir>/select/plan.json` with the chosen candidates'
variables. One budget: the exact knapsack (knapsack.py) with the greedy plan beside it; several
limits: the MILP (constraints.py); a latency limit: the runtime's lookup table, and the assembled
student measured whole before the plan is accepted. With `select.rerank` K > 1 the K least-damage
plans are assembled and the one whose student scores best on the validation split is taken. With
`select.uniform` every block takes that one candidate (an ablation of the selection)."""
import time

from compactkd_jax import config as config_lib
from compactkd_jax import constraints, feed, knapsack, supervised, workdir
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError


def run(ctx: RunContext) -> dict:
  s = ctx.cfg.select
  scores = with_latency(ctx, workdir.load_scores(ctx))
  plan = checked_plan(ctx, scores, s.budget)
  rerank = reranked(ctx, scores, plan) if s.rerank > 1 else None
  if rerank is not None:
    plan = rerank["plan"]
  result = {"metric": plan["metric"], "limit": plan["limit"], "cost": plan["cost"],
            "relative_cost": plan["cost"] / plan["teacher_cost"],
            "predicted_damage": plan["predicted_damage"], "choice": plan["choice"]}
  if "constraints" not in plan and not s.uniform:  # greedy answers the one-budget problem only
    greedy = knapsack.make_plan(scores, s.metric, s.budget, s.relative, s.damage, "greedy")
    plan["greedy"] = {"choice": greedy["choice"], "cost": greedy["cost"],
                      "predicted_damage": greedy["predicted_damage"]}
    result["greedy_predicted_damage"] = greedy["predicted_damage"]
  if rerank is not None:
    plan["rerank"] = rerank["table"]
    # Forward passes over the validation split: a cost of ours (equal_cost.py counts it).
    result.update(rerank_seconds=rerank["seconds"], rerank_images=rerank["images"],
                  rerank_val_accuracy=[row["val_accuracy"] for row in rerank["table"]])
  plan["curve"] = knapsack.damage_curve(scores, s.metric, s.damage)
  workdir.save_plan(ctx, plan, workdir.load_candidates(ctx) if _has_trained(plan) else {})
  return result


def _has_trained(plan: dict) -> bool:
  return any(e["candidate"] not in ("keep", "skip") for e in plan["blocks"])


def alternatives(scores: dict, s, budget: float, first: dict) -> list[dict]:
  """`first` and then up to `s.rerank - 1` further plans under the same limits, each the
  least-damage plan not found before (the MILP with the earlier plans cut off); fewer when no
  more plans fit."""
  plans = [first]
  while len(plans) < s.rerank:
    try:
      found = constraints.make_plan(scores, limits(s, budget), s.relative, s.damage,
                                    exclude=[p["choice"] for p in plans])
    except knapsack.InfeasibleBudget:
      break
    if "constraints" not in first:  # a one-budget plan: its budget is its only limit
      found.pop("constraints")
    plans.append(found)
  return plans


def reranked(ctx: RunContext, scores: dict, first: dict) -> dict:
  """Of the `select.rerank` least-damage plans, the one whose assembled student (distilled
  candidates, before refinement) has the best validation accuracy; a tie goes to the plan of
  lower predicted damage (found first). The per-block damages add up blocks scored one at a time;
  the whole student also shows how the replaced blocks' errors compound."""
  start = time.perf_counter()
  plans = alternatives(scores, ctx.cfg.select, ctx.cfg.select.budget, first)
  teacher_net, teacher_vars = workdir.load_teacher(ctx)
  cand_vars = workdir.load_candidates(ctx)
  split = ctx.splits["validation"]
  table = []
  for rank, plan in enumerate(plans):
    net, variables = workdir.assemble(teacher_net, teacher_vars, plan, cand_vars)
    accuracy = supervised.evaluate(net, feed.replicate(variables, ctx.mesh), split,
                                   ctx.preprocess, ctx.mesh,
                                   ctx.cfg.data.eval_batch_size)["accuracy"]
    table.append({"rank": rank, "choice": plan["choice"], "cost": plan["cost"],
                  "predicted_damage": plan["predicted_damage"], "val_accuracy": accuracy})
  best = max(range(len(plans)), key=lambda i: (table[i]["val_accuracy"], -i))
  table[best]["chosen"] = True
  return {"plan": plans[best], "table": table, "seconds": time.perf_counter() - start,
          "images": len(plans) * split.size}


def with_latency(ctx: RunContext, scores: dict) -> dict:
  """`scores` with every part's latency on `select.runtime` (the cached lookup table) when the
  budget or a constraint is a latency; else unchanged."""
  s = ctx.cfg.select
  if not config_lib.needs_latency(s):
    return scores
  from compactkd_jax.deploy import latency_table  # the deploy extra, only when asked for
  net, variables = workdir.load_teacher(ctx)
  threads = ctx.cfg.report.threads
  table = latency_table.build(net, variables, scores, ctx.dataset.image_shape, s.runtime, threads,
                              latency_table.cache_path(ctx.shared_path(), s.runtime, threads))
  return latency_table.annotate(scores, table)


MAX_LATENCY_CHECKS = 4
# A plan is accepted when its measured latency is this much under the limit: two measurements of
# the same file differ by about 1-2% on a quiet CPU, and the report measures again.
LATENCY_MARGIN = 0.02


def checked_plan(ctx: RunContext, scores: dict, budget: float) -> dict:
  """The plan; under a latency limit, checked on the runtime: the assembled student is measured
  whole, and while it is over the limit the table's latency limit is tightened by the measured
  excess and the plan solved again (the table sums parts timed alone, and misses what a whole
  network adds). `latency_check` in the plan records every attempt."""
  s = ctx.cfg.select
  plan = make_plan(scores, s, budget)
  if not config_lib.needs_latency(s):
    return plan
  from compactkd_jax.deploy import latency_table
  net, _ = workdir.load_teacher(ctx)
  limit = (plan.get("constraints") or {"latency": {"limit": plan["limit"]}})["latency"]["limit"]
  scale, attempts = 1.0, []
  while True:
    measured = latency_table.measure_network(workdir.student_net(net, plan), ctx.preprocess,
                                             ctx.dataset.image_shape, s.runtime,
                                             ctx.cfg.report.threads)
    predicted = (plan.get("constraints") or {"latency": plan})["latency"]["cost"]
    attempts.append({"scale": scale, "predicted_ms": predicted, "measured_ms": measured,
                     "choice": plan["choice"]})
    target = limit * (1 - LATENCY_MARGIN)
    if measured <= target or len(attempts) == MAX_LATENCY_CHECKS:
      break
    try:
      candidate = make_plan(scores, s, budget, scale * target / measured)
    except knapsack.InfeasibleBudget:
      break  # no tighter plan: keep this one, reported as over the limit
    scale *= target / measured
    plan = candidate
  plan["latency_check"] = {"limit_ms": limit, "measured_ms": attempts[-1]["measured_ms"],
                           "met": attempts[-1]["measured_ms"] <= limit, "margin": LATENCY_MARGIN,
                           "attempts": attempts}
  # The user's limit, not the tightened one the plan was solved under (that is in `attempts`).
  if "constraints" in plan and "latency" in plan["constraints"]:
    plan["constraints"]["latency"]["limit"] = limit
  if plan["metric"] == "latency":
    plan["limit"], plan["relative_budget"] = limit, limit / plan["teacher_cost"]
  return plan


def limits(s, budget: float, latency_scale: float = 1.0) -> dict[str, float]:
  """The budget's metric and limit, then every constraint of `select.constraints` that is set
  (> 0); a metric in both keeps the tighter limit. Latency limits are multiplied by
  `latency_scale` (< 1 when the measured student was over its limit)."""
  out = {s.metric: float(budget)}
  for metric, value in s.constraints.items():
    if value > 0:
      out[metric] = min(out.get(metric, float("inf")), float(value))
  return {m: v * latency_scale if m == "latency" else v for m, v in out.items()}


def make_plan(scores: dict, s, budget: float, latency_scale: float = 1.0) -> dict:
  """The plan for one budget: the one-budget solvers (dp, greedy) unless constraints are set or
  the solver is milp, which meets every limit at once."""
  if s.uniform:  # config.validate: no further limits, no latency
    return knapsack.uniform_plan(scores, s.metric, budget, s.relative, s.uniform, s.damage)
  wanted = limits(s, budget, latency_scale)
  budget = wanted[s.metric]
  if len(wanted) == 1 and s.solver != "milp":
    plan = knapsack.make_plan(scores, s.metric, budget, s.relative, s.damage, s.solver)
    return {**plan, "runtime": s.runtime} if config_lib.needs_latency(s) else plan
  if s.solver == "greedy":
    raise UserError("config.select.solver='greedy' answers one budget only; with "
                    "config.select.constraints use solver 'milp' (or 'dp', which becomes milp)")
  plan = constraints.make_plan(scores, wanted, s.relative, s.damage)
  return {**plan, "runtime": s.runtime} if config_lib.needs_latency(s) else plan


def check_budgets(ctx: RunContext, budgets) -> None:
  """Every budget of a sweep is reachable (else the infeasible-budget error names the smallest
  reachable cost, or the limit that cannot be met), checked before the first budget runs."""
  scores = with_latency(ctx, workdir.load_scores(ctx))
  for budget in budgets:
    make_plan(scores, ctx.cfg.select, budget)
