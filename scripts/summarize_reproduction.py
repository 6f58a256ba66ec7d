"""Collects the workdirs of scripts/reproduce.sh into one table: for each teacher and budget, the
rows teacher / student from scratch / Hinton-KD only / ours, with test accuracy as mean and spread
(min-max) over the seeds, FLOPs, MACs, params, latency at batch 1 and training wall time.

  python scripts/summarize_reproduction.py runs/reproduce --out results/fashion_mnist

Writes OUT.md (the recipe read from the runs' config.json, then the tables) and OUT.json. Layout read: RUNS/<teacher>/seed<N>/<metric>_<fraction>/results.json.
"""
import argparse
import collections
import glob
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from compactkd_jax.cost import format_table  # noqa: E402

ROWS = (("teacher", "teacher"), ("scratch", "student from scratch (CE)"),
        ("kd", "Hinton KD only"), ("student", "ours (block-wise KD + fine-tune)"))


def _wall(workdir: str, row: str) -> float | None:
  """Training wall seconds of one row: ours counts distillation, refinement and fine-tune."""
  read = lambda *p: _read(os.path.join(workdir, *p, "result.json"))
  if row == "teacher":
    return read("teacher").get("wall_seconds")
  if row in ("scratch", "kd"):
    return read(f"baseline_{row}").get("train_seconds")
  parts = [read(p).get("wall_seconds") for p in ("distill", "select", "refine", "finetune")]
  return sum(p for p in parts if p is not None)


def _read(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def collect(runs: str) -> dict:
  """{(teacher, budget): {row: [per-seed dicts]}}"""
  table = collections.defaultdict(lambda: collections.defaultdict(list))
  for path in sorted(glob.glob(os.path.join(runs, "*", "seed*", "*", "results.json"))):
    workdir = os.path.dirname(path)
    teacher, seed = path.split(os.sep)[-4], path.split(os.sep)[-3]
    results = _read(path)
    b = results["budget"]
    key = (teacher, f"{b['metric']} <= {100 * b['relative']:.1f}%")
    for row, _ in ROWS:
      r = results["baselines"].get(row) if row in ("scratch", "kd") else results[row]
      if r is not None:
        table[key][row].append({**r, "seed": seed, "wall_seconds": _wall(workdir, row)})
  return table


def _spread(values: list[float]) -> str:
  mean = statistics.mean(values)
  if len(values) == 1:
    return f"{100 * mean:.2f}% (1 seed)"
  return f"{100 * mean:.2f}% ({100 * min(values):.2f}-{100 * max(values):.2f}, {len(values)} seeds)"


def markdown(table: dict) -> str:
  out = []
  for (teacher, budget), rows in table.items():
    out += [f"### {teacher}, budget {budget} of the teacher", ""]
    lines = []
    for row, label in ROWS:
      runs = rows.get(row)
      if not runs:
        continue
      walls = [r["wall_seconds"] for r in runs if r["wall_seconds"] is not None]
      lines.append({"row": label, "test accuracy": _spread([r["accuracy"] for r in runs]),
                    "flops": runs[0]["flops"], "macs": runs[0]["macs"],
                    "params": runs[0]["params"],
                    "latency (ms)": f"{statistics.mean(r['latency_ms'] for r in runs):.2f}",
                    "train wall (s)": f"{statistics.mean(walls):,.0f}" if walls else "-"})
    out += [format_table(lines, list(lines[0])), ""]
  return "\n".join(out)


def recipe(runs: str) -> str:
  """The training recipe of the runs, from the first workdir's config.json (the same for all)."""
  paths = sorted(glob.glob(os.path.join(runs, "*", "seed*", "*", "config.json")))
  lines = []
  for path in paths:
    c = _read(path)
    t = c["teacher"]
    line = (f"- {t['model']} width {t['options']['width']}: teacher {t['train']['epochs']:g} epochs "
            f"(lr {t['train']['learning_rate']:g}); block-wise distillation "
            f"{c['distill']['train']['epochs']:g} epoch (lr {c['distill']['train']['learning_rate']:g}, "
            f"candidates {', '.join(c['distill']['candidates'])}); refinement "
            f"{c['refine']['train']['epochs']:g} epoch per block; KD fine-tune "
            f"{c['finetune']['train']['epochs']:g} epochs (lr {c['finetune']['train']['learning_rate']:g},"
            f" T={c['finetune']['kd']['temperature']:g}, alpha={c['finetune']['kd']['alpha']:g}); "
            f"both baselines {c['baselines']['train']['epochs']:g} epochs (lr "
            f"{c['baselines']['train']['learning_rate']:g}); batch 128, SGD Nesterov, cosine decay; "
            f"selection minimizes summed {c['select']['damage']} damage ({c['select']['solver']}).")
    if line not in lines:
      lines.append(line)
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs")
  parser.add_argument("--out", default=os.path.join(REPO, "results", "fashion_mnist"))
  parser.add_argument("--note", default="", help="a remark for the header (e.g. the machine's load)")
  args = parser.parse_args()
  table = collect(args.runs)
  if not table:
    sys.exit(f"error: no {args.runs}/<teacher>/seed<N>/<budget>/results.json yet; run "
             "scripts/reproduce.sh first")
  text = markdown(table)
  print(text)
  header = ["# Reproduction on the full Fashion-MNIST", "",
            "Made by `bash scripts/reproduce.sh` (then `python scripts/summarize_reproduction.py "
            f"{args.runs}`); test split (10,000 images), validation carved from train (5,000). "
            "Accuracy: mean over seeds (min-max). Latency: batch 1, median of repeated runs, on "
            "the machine that ran it. Train wall: that row's training phases (ours: distillation, "
            "selection, refinement, fine-tune; the teacher's training not counted).", "",
            "Recipe (the same for every row of equal training cost):", "", recipe(args.runs), "",
            *([args.note, ""] if args.note else [])]
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(header) + "\n" + text)
  with open(args.out + ".json", "w") as f:
    json.dump({f"{t} | {b}": rows for (t, b), rows in table.items()}, f, indent=1)


if __name__ == "__main__":
  main()
