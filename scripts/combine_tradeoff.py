"""One measured trade-off curve from budgets that ran in different workdirs (different steps or
sessions: workdirs do not outlive a session, their results.json files are committed), one seed at a
time: the same table, json and plot as summarize_tradeoff.py.

  .venv/bin/python scripts/combine_tradeoff.py --out results/tradeoff_resnet20_inner \
      --command "<the commands that made the files>" \
      --seed 0 results/a_runs/seed0/results.json results/b_runs/seed0/results_macs_0.75.json \
      --seed 1 results/a_runs/seed1/results.json results/b_runs/seed1/results_macs_0.75.json

Each file is a sweep's results.json (every budget in it is taken) or one budget's results.json.
Every seed must give the same budgets, each once, from the same teacher, with the same baselines
matched the same way; the budgets may limit different costs (rows then go by metric). A
results.json does not record its seed: which files belong to which seed is the caller's word (the
per-seed folders of results/*_runs/).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import summarize_tradeoff  # noqa: E402
from compactkd_jax import files, sweep  # noqa: E402
from compactkd_jax.errors import UserError  # noqa: E402


def budgets_of(path: str) -> dict[str, dict]:
  """folder -> one budget's results, from a sweep summary or from one budget's results.json."""
  res = files.read_json(path, fix="give a results.json that this tool wrote")
  if res is None:
    raise UserError(f"{path}: no such file")
  if "sweep" in res:
    return dict(res["budgets"])
  if "student" in res and "budget" in res:
    return {sweep.folder_name(res["budget"]["metric"], res["budget"]["relative"]): res}
  raise UserError(f"{path} is neither a sweep's nor a budget's results.json")


def one_seed(paths: list[str]) -> dict:
  """One seed's budgets merged into a sweep summary, largest budget first."""
  per_budget = {}
  for path in paths:
    for folder, res in budgets_of(path).items():
      if folder in per_budget:
        raise UserError(f"{folder} is given twice for one seed ({path}); give each budget once")
      per_budget[folder] = res
  teachers = {(r["teacher"]["name"], r["teacher"]["accuracy"]) for r in per_budget.values()}
  if len(teachers) > 1:
    raise UserError(f"the files compress different teachers ({sorted(teachers)}); combine budgets "
                    "of one teacher")
  baselines = {tuple(sorted((k, b["match"]) for k, b in r["baselines"].items()))
               for r in per_budget.values()}
  if len(baselines) > 1 or not next(iter(baselines)):
    raise UserError(f"the budgets' baselines differ or are missing ({sorted(baselines)}); every "
                    "budget needs the same baselines, matched the same way")
  # Budgets of different metrics (MobileNetV2: 50% MACs and 1/5.2 params) may share one table and
  # plot, whose points sit at each student's measured MACs and params; rows by metric, then size.
  order = sorted(per_budget, key=lambda f: (per_budget[f]["budget"]["metric"],
                                            -per_budget[f]["budget"]["relative"]))
  return sweep.gather({f: per_budget[f] for f in order})


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--command", default="")
  p.add_argument("--note", default="", help="a paragraph under the commands")
  p.add_argument("--seed", nargs="+", action="append", required=True, metavar=("SEED", "FILE"),
                 help="a seed, then its results.json files (repeat per seed)")
  args = p.parse_args()
  if any(len(s) < 2 or not s[0].isdigit() for s in args.seed):
    sys.exit("error: --seed takes a seed (an integer) and then at least one results.json")
  seeds = [s[0] for s in args.seed]
  if len(set(seeds)) != len(seeds):
    sys.exit(f"error: a seed is given twice ({', '.join(seeds)}); give each seed's files once")
  return args


def main() -> None:
  args = parse_args()
  seeds = [int(s[0]) for s in args.seed]
  try:
    summaries = [one_seed(s[1:]) for s in args.seed]
  except UserError as e:
    sys.exit(f"error: {e}")
  folders = [[row["folder"] for row in s["sweep"]] for s in summaries]
  if any(f != folders[0] for f in folders):
    sys.exit(f"error: the seeds give different budgets ({folders}); combine like with like")
  points, teacher = sweep.tradeoff_points(summaries)
  table = summarize_tradeoff.rows(summaries)
  sources = {seed: s[1:] for seed, s in zip(seeds, args.seed)}
  summarize_tradeoff.write(args.out, summarize_tradeoff.markdown(table, seeds, args.command,
                                                                 args.note),
                           {"command": args.command, "seeds": seeds, "sources": sources,
                            "rows": table}, points, teacher, seeds)


if __name__ == "__main__":
  main()
