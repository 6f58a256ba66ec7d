"""Gathers budget sweeps of the same config run with different seeds into one table and one
measured trade-off plot (mean over seeds, min-max as error bars).

  .venv/bin/python scripts/summarize_tradeoff.py --out results/tradeoff_resnet20 \
      --command "<the command that made the workdirs>" runs/sweep_s0 runs/sweep_s1

With --finished, sweeps still running (they resume across sessions) are summarized over the budgets
every workdir has finished; the table says which budgets it leaves out.

Writes <out>.md, <out>.json and <out>.png. Every row: test accuracy of ours and of each baseline,
the gap to the best baseline in every seed, and the training wall time each method spent.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compactkd_jax import plots, sweep  # noqa: E402
from compactkd_jax.errors import UserError  # noqa: E402


def _fmt(values) -> str:
  v = 100 * np.asarray(values, float)
  return f"{v.mean():.2f}%" + (f" ({v.min():.2f}-{v.max():.2f})" if len(v) > 1 else "")


def rows(summaries: list[dict]) -> list[dict]:
  out = []
  for folder in [row["folder"] for row in summaries[0]["sweep"]]:  # the sweep's budget order
    runs = [s["budgets"][folder] for s in summaries]
    kinds = list(runs[0]["baselines"])
    best = [max(r["baselines"][k]["accuracy"] for k in kinds) for r in runs]
    out.append({
        "budget": sweep.summary_row(runs[0])["budget"], "macs": runs[0]["student"]["macs"],
        "params": runs[0]["student"]["params"],
        "teacher": [r["teacher"]["accuracy"] for r in runs],
        "ours": [r["student"]["accuracy"] for r in runs],
        **{k: [r["baselines"][k]["accuracy"] for r in runs] for k in kinds},
        "gap_to_best_baseline": [r["student"]["accuracy"] - b for r, b in zip(runs, best)],
        "seconds": {"ours": [r["student"]["train_seconds"] for r in runs],
                    **{k: [r["baselines"][k]["train_seconds"] for r in runs] for k in kinds}},
        "images": {"ours": [r["student"]["train_images"] for r in runs],
                   **{k: [r["baselines"][k]["train_images"] for r in runs] for k in kinds}},
        "overhead_ratio": [r["cost"]["overhead_ratio"] for r in runs],
        "kinds": kinds})
  return out


def markdown(table: list[dict], seeds: list, command: str, note: str = "") -> str:
  kinds = table[0]["kinds"]
  lines = [f"# Measured trade-off: one student per budget, seeds {seeds}", "",
           f"Command: `{command}`", "", *([note, ""] if note else []),
           "Test accuracy, mean (min-max) over seeds. Every baseline trains the same student "
           "architecture for what ours cost in total (distill + score + refine + fine-tune; "
           "priced on this machine, see the per-budget reports): equal total cost. Gap: ours "
           "minus the best baseline, per seed.", "",
           "| budget | MACs | params | ours | " + " | ".join(kinds) +
           " | gap to best baseline (per seed) | teacher | wall ours / " + " / ".join(kinds) +
           " | training images ours / " + " / ".join(kinds) + " | overhead |",
           "|---" * (9 + len(kinds)) + "|"]
  for r in table:
    gaps = ", ".join(f"{100 * g:+.2f}" for g in r["gap_to_best_baseline"])
    walls = " / ".join(f"{np.mean(r['seconds'][k]):.0f}" for k in ("ours", *kinds))
    images = " / ".join(f"{np.mean(r['images'][k]):,.0f}" for k in ("ours", *kinds))
    lines.append(f"| {r['budget']} | {r['macs']:,} | {r['params']:,} | {_fmt(r['ours'])} | " +
                 " | ".join(_fmt(r[k]) for k in kinds) +
                 f" | {gaps} | {_fmt(r['teacher'])} | {walls} s | {images} | "
                 f"{np.mean(r['overhead_ratio']):.2f} |")
  return "\n".join(lines) + "\n"


def parse_args(description: str, finished: bool = False):
  """--out, --command, --note (and --finished where asked) and the sweep workdirs (one per seed),
  with the seeds they ran."""
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--out", required=True)
  p.add_argument("--command", default="")
  p.add_argument("--note", default="", help="a paragraph under the commands: how the rows were made "
                 "where the reader must know it (e.g. a load on the machine)")
  if finished:
    p.add_argument("--finished", action="store_true", help="sweeps still running: summarize the "
                   "budgets every workdir has finished (the table names the ones left out)")
  p.add_argument("workdirs", nargs="+")
  args = p.parse_args()
  missing = [w for w in args.workdirs if not os.path.isfile(os.path.join(w, "config.json"))]
  if missing:
    sys.exit(f"error: {', '.join(missing)}: no config.json, not a workdir of this tool; give one "
             "sweep workdir per seed")
  seeds = [json.load(open(os.path.join(w, "config.json")))["seed"] for w in args.workdirs]
  return args, seeds


def write(out: str, text: str, payload: dict, points: list[dict], teacher: dict, seeds) -> None:
  """<out>.md (with the plot linked), <out>.json and the measured trade-off <out>.png."""
  text += f"\n![measured trade-off]({os.path.basename(out)}.png)\n"
  with open(out + ".md", "w") as f:
    f.write(text)
  with open(out + ".json", "w") as f:
    json.dump(payload, f, indent=2)
  plots.measured_tradeoff(points, teacher, out + ".png",
                          title=f"measured test accuracy, seeds {seeds} (bars: min-max)")
  print(text)


def finished_in_all(summaries: list[dict]) -> tuple[list[dict], list[str]]:
  """The summaries cut to the budgets every workdir has finished, and the budgets left out."""
  swept = [{*s["budgets"], *s["unfinished"]} for s in summaries]
  if any(f != swept[0] for f in swept):
    sys.exit(f"error: the workdirs swept different budgets ({[sorted(f) for f in swept]}); "
             "summarize like with like")
  every = [f for s in summaries for f in (*s["budgets"], *s["unfinished"])]
  common = [f for f in summaries[0]["budgets"] if all(f in s["budgets"] for s in summaries)]
  if not common:
    sys.exit("error: no budget has finished in every workdir yet; summarize when one has")
  cut = [sweep.gather({f: s["budgets"][f] for f in common}) for s in summaries]
  return cut, list(dict.fromkeys(f for f in every if f not in common))


def main() -> None:
  args, seeds = parse_args(__doc__.splitlines()[0], finished=True)
  try:
    summaries = [sweep.load(w, finished_only=args.finished) for w in args.workdirs]
  except UserError as e:  # an unfinished or foreign workdir: one line
    running = not args.finished and "not finished" in str(e)
    hint = " (--finished summarizes the budgets done so far)" if running else ""
    sys.exit(f"error: {e}{hint}")
  unfinished = []
  if args.finished:
    summaries, unfinished = finished_in_all(summaries)
  folders = [[row["folder"] for row in s["sweep"]] for s in summaries]
  if any(f != folders[0] for f in folders):
    sys.exit(f"error: the workdirs swept different budgets ({folders}); summarize like with like")
  note = args.note + (f"\n\nPartial: {', '.join(unfinished)} not yet finished in every workdir; "
                      "this table holds the budgets that have." if unfinished else "")
  table = rows(summaries)
  points, teacher = sweep.tradeoff_points(summaries)
  write(args.out, markdown(table, seeds, args.command, note.strip()),
        {"command": args.command, "seeds": seeds, "rows": table, "unfinished": unfinished},
        points, teacher, seeds)


if __name__ == "__main__":
  main()
