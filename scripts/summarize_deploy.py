"""Deployed speed of finished runs side by side: for each workdir (a run whose report deployed
teacher and student with `report.runtimes`), the budget, the accuracies, the MAC reduction, and per
runtime and precision the batch-1 latency of teacher and student, the speed-up and its ratio to the
MAC reduction; for latency budgets, the table's prediction beside the measured latency.

  .venv/bin/python scripts/summarize_deploy.py --out results/deploy_latency \
      "ResNet-20 w0.5, MACs 50%=runs/quickstart" "ResNet-20 w0.5, latency 50%=runs/lat_r20" ...

Writes <out>.json and the tables of <out>.md between the markers (the prose around them is kept).
"""
import argparse
import json
import os

BEGIN, END = "<!-- tables: begin -->", "<!-- tables: end -->"


def load(label_dir: str) -> dict:
  label, workdir = label_dir.split("=", 1)
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  if not res.get("deploy"):
    raise SystemExit(f"error: {workdir} has no deployment in its results (report.runtimes empty)")
  return {"label": label, "workdir": workdir, "results": res}


def speed_rows(runs) -> list[str]:
  lines = ["| run | budget | test acc teacher / student | student's training: wall, images | "
           "MAC reduction | runtime | precision | teacher ms | student ms | speed-up | "
           "speed-up / MAC reduction |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in runs:
    res = r["results"]
    b, macs = res["budget"], res["compression"]["macs"]
    budget = f"{b['metric']} {100 * b['relative']:.0f}%"
    acc = f"{100 * res['teacher']['accuracy']:.2f}% / {100 * res['student']['accuracy']:.2f}%"
    cost = f"{res['cost']['total_seconds']:.0f} s, {sum(res['cost']['images'].values()):,}"
    for runtime, entries in res["deploy"]["student"]["runtimes"].items():
      for precision, s in entries.items():
        t = res["deploy"]["teacher"]["runtimes"][runtime][precision]
        tm, sm = t["latency"]["median_ms"], s["latency"]["median_ms"]
        lines.append(f"| {r['label']} | {budget} | {acc} | {cost} | {macs:.2f}x | {runtime} | "
                     f"{precision} | "
                     f"{tm:.3f} | {sm:.3f} | {tm / sm:.2f}x | {tm / sm / macs:.2f} |")
  return lines


def latency_rows(runs) -> list[str]:
  lines = ["| run | runtime | limit ms | table's prediction ms | measured ms | error | meets it | "
           "checks at selection |", "|---|---|---|---|---|---|---|---|"]
  for r in runs:
    plan = r["results"]["plan"]
    if "runtime" not in plan:
      continue
    lat = (plan.get("constraints") or {"latency": plan})["latency"]
    check = plan.get("latency_check")
    limit = check["limit_ms"] if check else plan["limit"]
    measured = r["results"]["deploy"]["student"]["runtimes"][plan["runtime"]]["fp32"][
        "latency"]["median_ms"]
    checks = (f"{len(check['attempts'])} (limit x{check['attempts'][-1]['scale']:.3f})"
              if check else "none (before the check existed)")
    lines.append(f"| {r['label']} | {plan['runtime']} | {limit:.4f} | {lat['cost']:.4f} | "
                 f"{measured:.4f} | {100 * (measured - lat['cost']) / lat['cost']:+.1f}% | "
                 f"{'yes' if measured <= limit else 'no'} | {checks} |")
  return lines


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", required=True, help="path without extension")
  p.add_argument("runs", nargs="+", help="label=workdir")
  args = p.parse_args(argv)
  runs = [load(r) for r in args.runs]
  tables = "\n".join([BEGIN, "", *speed_rows(runs), "", *latency_rows(runs), "", END])
  md = args.out + ".md"
  text = open(md).read() if os.path.exists(md) else f"# Deployed speed\n\n{BEGIN}\n{END}\n"
  head, rest = text.split(BEGIN, 1)
  with open(md, "w") as f:
    f.write(head + tables + rest.split(END, 1)[1])
  with open(args.out + ".json", "w") as f:
    json.dump([{"label": r["label"], "budget": r["results"]["budget"],
                "compression": r["results"]["compression"], "deploy": r["results"]["deploy"],
                "plan_latency_check": r["results"]["plan"].get("latency_check"),
                "teacher_accuracy": r["results"]["teacher"]["accuracy"],
                "student_accuracy": r["results"]["student"]["accuracy"]} for r in runs], f,
              indent=1)
  print(tables)


if __name__ == "__main__":
  main()
