"""The summary of a budget sweep: every budget's `results.json` gathered into the sweep's own
`results.json`, a `report.md` with one table over the budgets (equal total cost first), and the
measured `tradeoff.png` (test accuracy against MACs and parameters, one line per method)."""
import os

from compactkd_jax import cost, files, plots, workdir as workdir_lib
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

FOLDER_PREFIX = "budget_"


def folder_name(metric: str, budget: float) -> str:
  return f"{FOLDER_PREFIX}{metric}_{budget:g}"


def summarize(ctx: RunContext, folders: list[str]) -> dict:
  per_budget = {}
  for folder in folders:
    res = ctx.read_json(folder, workdir_lib.RESULTS)
    if res is None:
      raise UserError(f"{ctx.path(folder, 'results.json')} is missing: the budget's report phase "
                      "did not finish; rerun the same command")
    per_budget[folder] = res
  summary = gather(per_budget)
  ctx.write_json(summary, workdir_lib.RESULTS)
  files.write_text(ctx.path("report.md"), markdown(summary))
  points, teacher = tradeoff_points([summary])
  plots.measured_tradeoff(points, teacher, ctx.path("tradeoff.png"),
                          title=f"{ctx.cfg.teacher.model}: measured test accuracy, one student per "
                                "budget")
  return {"budgets": len(folders), "workdir": ctx.workdir}


def gather(per_budget: dict[str, dict]) -> dict:
  """The sweep's summary from its budgets' results (folder -> results.json), in budget order."""
  return {"sweep": [dict(folder=f, **summary_row(r)) for f, r in per_budget.items()],
          "teacher": next(iter(per_budget.values()))["teacher"], "budgets": per_budget}


def summary_row(results: dict) -> dict:
  """One line of the sweep table: the budget, our student's costs, every method's accuracy and
  training wall time."""
  s, b = results["student"], results["budget"]
  row = {"budget": f"{b['metric']} {100 * b['relative']:.0f}%" if b["relative"] <= 1 else
         f"{b['metric']} {b['limit']:,.0f}",
         "macs": s["macs"], "params": s["params"],
         "teacher": results["teacher"]["accuracy"], "ours": s["accuracy"],
         "ours_seconds": s["train_seconds"], "overhead_ratio": results["cost"]["overhead_ratio"]}
  for kind, r in results["baselines"].items():
    row[kind] = r["accuracy"]
    row[f"{kind}_seconds"] = r["train_seconds"]
    row[f"{kind}_match"] = r["match"]
  return row


def markdown(summary: dict) -> str:
  rows = summary["sweep"]
  kinds = [k for k in ("scratch", "kd") if k in rows[0]]
  pct = lambda a: f"{100 * a:.2f}%"
  table = [{"budget": r["budget"], "MACs": f"{r['macs']:,}", "params": f"{r['params']:,}",
            "ours": pct(r["ours"]), **{k: pct(r[k]) for k in kinds},
            "ours - best baseline": f"{100 * (r['ours'] - max(r[k] for k in kinds)):+.2f}"
            if kinds else "-",
            "teacher": pct(r["teacher"]),
            "wall ours / " + " / ".join(kinds): " / ".join(
                f"{r[k]:.0f}" for k in ("ours_seconds", *(f"{k}_seconds" for k in kinds))) + " s",
            "overhead": f"{r['overhead_ratio']:.2f}"} for r in rows]
  match = {r.get(f"{k}_match") for r in rows for k in kinds}
  how = ("at equal total training cost (each baseline trains for our student's whole cost: "
         "distill, score, refine, fine-tune)" if match == {"total_cost"}
         else f"baselines matched by: {', '.join(sorted(match))}")
  return "\n".join([
      "# compactkd_jax budget sweep", "",
      f"Test accuracy of one student per budget, {how}. Per-budget reports: "
      f"{', '.join(r['folder'] + '/report.md' for r in rows)}. Overhead: (distill + score + "
      "refine) / fine-tune wall time.", "",
      cost.format_table(table, list(table[0])), "",
      "![measured trade-off](tradeoff.png)", ""])


def tradeoff_points(summaries: list[dict]) -> tuple[list[dict], dict]:
  """Points for plots.measured_tradeoff from one or more sweep summaries of the same budgets (one
  per seed): each method's accuracies per budget collected across the seeds."""
  points: dict[tuple, dict] = {}
  teacher = None
  for summary in summaries:
    for folder, res in summary["budgets"].items():
      rows = {"ours": res["student"], **res["baselines"]}
      for method, r in rows.items():
        p = points.setdefault((method, folder), {"method": method, "macs": r["macs"],
                                                 "params": r["params"], "accuracies": []})
        p["accuracies"].append(r["accuracy"])
    t = summary["teacher"]
    teacher = teacher or {"macs": t["macs"], "params": t["params"], "accuracies": []}
    teacher["accuracies"].append(t["accuracy"])
  return list(points.values()), teacher


def load(workdir: str, finished_only: bool = False) -> dict:
  """A finished sweep's summary (for scripts that gather several seeds). With `finished_only`, the
  summary of the budgets whose report has finished, for a sweep still running (across sessions);
  its "unfinished" lists the folders left out."""
  if finished_only:
    return _load_finished(workdir)
  path = os.path.join(workdir, workdir_lib.RESULTS)
  summary = files.read_json(path, fix="rerun the sweep's command to rewrite its report")
  if summary is None:
    raise UserError(f"no results.json in {workdir}: the sweep has not finished its report")
  if "sweep" not in summary:
    raise UserError(f"{path} is a single-budget run, not a sweep (config.select.budgets)")
  return summary


def _load_finished(workdir: str) -> dict:
  config = files.read_json(os.path.join(workdir, "config.json"),
                           fix="give a workdir that a sweep ran in")
  select = (config or {}).get("select", {})
  if not select.get("budgets"):
    raise UserError(f"{workdir} holds no budget sweep (its config.json lists no select.budgets)")
  folders = [folder_name(select["metric"], b) for b in select["budgets"]]
  per_budget = {f: files.read_json(os.path.join(workdir, f, workdir_lib.RESULTS),
                                   fix="rerun the sweep's command to rewrite that budget's report")
                for f in folders}
  done = {f: r for f, r in per_budget.items() if r is not None}
  if not done:
    raise UserError(f"no budget of the sweep in {workdir} has finished its report yet")
  return {**gather(done), "unfinished": [f for f in folders if f not in done]}
