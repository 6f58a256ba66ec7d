"""The student: selection under the budget (design stage 5) into `plan.json`, and assembly of the
student network from the plan, the distilled candidate weights and the teacher's stem and head."""

from compactkd_jax import constraints, distill_phase, select, teacher
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError
from compactkd_jax.models.net import BlockNet, LayerSpec


def run_select(ctx: RunContext) -> dict:
  scores = ctx.read_shared_json("scores.json")
  if scores is None:
    raise UserError(f"no scores.json in {ctx.workdir}: run the distill phase first "
                    "(add 'distill' to config.phases)")
  s = ctx.cfg.select
  scores = with_latency(ctx, scores)
  plan = checked_plan(ctx, scores, s.budget)
  result = {"metric": plan["metric"], "limit": plan["limit"], "cost": plan["cost"],
            "relative_cost": plan["cost"] / plan["teacher_cost"],
            "predicted_damage": plan["predicted_damage"], "choice": plan["choice"]}
  if "constraints" not in plan:  # the greedy baseline answers the one-budget problem only
    greedy = select.make_plan(scores, s.metric, s.budget, s.relative, s.damage, "greedy")
    plan["greedy"] = {"choice": greedy["choice"], "cost": greedy["cost"],
                      "predicted_damage": greedy["predicted_damage"]}
    result["greedy_predicted_damage"] = greedy["predicted_damage"]
  plan["curve"] = select.damage_curve(scores, s.metric, s.damage)
  ctx.write_json(plan, "plan.json")
  return result


def needs_latency(s) -> bool:
  return s.metric == "latency" or s.constraints.latency > 0


def with_latency(ctx: RunContext, scores: dict) -> dict:
  """`scores` with every part's latency on `select.runtime` (the cached lookup table) when the
  budget or a constraint is a latency; else unchanged."""
  s = ctx.cfg.select
  if not needs_latency(s):
    return scores
  from compactkd_jax.deploy import latency_table  # the deploy extra, only when asked for
  net, variables = teacher.load(ctx)
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
  if not needs_latency(s):
    return plan
  from compactkd_jax.deploy import latency_table
  net, _ = teacher.load(ctx)
  limit = (plan.get("constraints") or {"latency": {"limit": plan["limit"]}})["latency"]["limit"]
  scale, attempts = 1.0, []
  while True:
    measured = latency_table.measure_network(student_net(net, plan), ctx.preprocess,
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
    except select.InfeasibleBudget:
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
  wanted = limits(s, budget, latency_scale)
  budget = wanted[s.metric]
  if len(wanted) == 1 and s.solver != "milp":
    plan = select.make_plan(scores, s.metric, budget, s.relative, s.damage, s.solver)
    return {**plan, "runtime": s.runtime} if needs_latency(s) else plan
  if s.solver == "greedy":
    raise UserError("config.select.solver='greedy' answers one budget only; with "
                    "config.select.constraints use solver 'milp' (or 'dp', which becomes milp)")
  plan = constraints.make_plan(scores, wanted, s.relative, s.damage)
  return {**plan, "runtime": s.runtime} if needs_latency(s) else plan


def check_budgets(ctx: RunContext, budgets) -> None:
  """Every budget of a sweep is reachable (else the infeasible-budget error names the smallest
  reachable cost, or the limit that cannot be met), checked before the first budget runs."""
  scores = ctx.read_shared_json("scores.json")
  if scores is None:
    raise UserError(f"no scores.json in {ctx.workdir}: run the distill phase first "
                    "(add 'distill' to config.phases)")
  scores = with_latency(ctx, scores)
  for budget in budgets:
    make_plan(scores, ctx.cfg.select, budget)


def load_plan(ctx: RunContext) -> dict:
  plan = ctx.read_json("plan.json")
  if plan is None:
    raise UserError(f"no plan.json in {ctx.workdir}: run the select phase first")
  return plan


def student_net(teacher_net: BlockNet, plan: dict) -> BlockNet:
  return teacher_net.with_blocks({e["block"]: LayerSpec.from_json(e["spec"])
                                  for e in plan["blocks"]})


def assemble(teacher_net: BlockNet, teacher_vars: dict, plan: dict, cand_vars: dict):
  """(student net, variables): stem, head and `keep` blocks from the teacher, every other block
  from its distilled candidate; parameter-free choices (skip) have no entry."""
  net = student_net(teacher_net, plan)
  variables = {"params": dict(teacher_vars["params"]),
               "batch_stats": dict(teacher_vars.get("batch_stats", {}))}
  for entry in plan["blocks"]:
    b, c = entry["block"], entry["candidate"]
    if c == "keep":
      continue
    for col in ("params", "batch_stats"):
      variables[col].pop(b, None)
      tree = cand_vars.get(col, {}).get(b, {}).get(c)
      if tree:
        variables[col][b] = tree
  # Shares the teacher's buffers: callers replicate (copy) before anything is donated.
  return net, variables


def initial_student(ctx: RunContext):
  """Teacher (net, vars) and the assembled student (net, vars) from plan.json and the candidates."""
  teacher_net, teacher_vars = teacher.load(ctx)
  plan = load_plan(ctx)
  cand_vars = distill_phase.load_candidates(ctx, distill_phase.build_plan(ctx, teacher_net))
  net, variables = assemble(teacher_net, teacher_vars, plan, cand_vars)
  return teacher_net, teacher_vars, net, variables, plan
