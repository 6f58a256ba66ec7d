"""How long should our student's KD fine-tune be? Workdirs that share everything up to refinement
and differ only in `finetune.train.epochs`, per seed, side by side: validation and test accuracy,
each against the teacher's, and what the fine-tune cost. The length is chosen on the VALIDATION
split (best mean over seeds; a tie goes to the shorter, cheaper one); test is shown for the record
and for the target "the student at or above its teacher (mean of seeds)".

  .venv/bin/python scripts/summarize_finetune_length.py --out results/finetune_length_resnet20_50 \
      --budget budget_macs_0.5 --command "<commands>" runs/ft8_s0 runs/ft8_s1 runs/ft16_s0 runs/ft16_s1

Writes <out>.md and <out>.json.
"""
import argparse
import json
import os
import sys

import numpy as np


def _read(path: str) -> dict:
  if not os.path.exists(path):
    sys.exit(f"error: {path} is missing: let the run that writes it finish")
  with open(path) as f:
    return json.load(f)


def run(workdir: str, budget: str) -> dict:
  """One workdir's student of `budget`: accuracies, its teacher's, and the cost of each phase."""
  config = _read(os.path.join(workdir, "config.json"))
  teacher = _read(os.path.join(workdir, "teacher", "result.json"))
  distill = _read(os.path.join(workdir, "distill", "result.json"))
  refine = _read(os.path.join(workdir, budget, "refine", "result.json"))
  fine = _read(os.path.join(workdir, budget, "finetune", "result.json"))
  overhead = distill["train_seconds"] + distill["score_seconds"] + refine["wall_seconds"]
  return {"workdir": os.path.basename(os.path.normpath(workdir)), "seed": config["seed"],
          "epochs": config["finetune"]["train"]["epochs"],
          "val_accuracy": fine["val_accuracy"], "accuracy": fine["test_accuracy"],
          "teacher_val_accuracy": teacher["val_accuracy"], "teacher_accuracy": teacher["test_accuracy"],
          "finetune_seconds": fine["train_seconds"], "overhead_seconds": overhead,
          "refined_from": refine.get("inputs_digest"),  # the teacher, distillation and plan it read
          "images": distill["train_images"] + distill["score_images"] + refine["images"]
                    + fine["images"]}


def check_like_with_like(runs: list[dict]) -> None:
  """Every length must have run for the same seeds, and a seed's lengths from one refined student."""
  seeds = {e: sorted(r["seed"] for r in runs if r["epochs"] == e) for e in {r["epochs"] for r in runs}}
  if len({tuple(s) for s in seeds.values()}) != 1 or any(len(set(s)) != len(s) for s in seeds.values()):
    sys.exit(f"error: need one workdir per fine-tune length and seed, the same seeds for every "
             f"length (got seeds by length: {seeds})")
  for seed in {r["seed"] for r in runs}:
    if len({r["refined_from"] for r in runs if r["seed"] == seed}) > 1:
      sys.exit(f"error: seed {seed}'s workdirs refined different students (other teacher, "
               "distillation or plan); copy one workdir after refinement for each length")


def lengths(runs: list[dict]) -> list[dict]:
  """Per fine-tune length, the per-seed values (in seed order) and their means."""
  out = []
  for epochs in sorted({r["epochs"] for r in runs}):
    rs = sorted((r for r in runs if r["epochs"] == epochs), key=lambda r: r["seed"])
    col = lambda key: [r[key] for r in rs]
    out.append({"epochs": epochs, "seeds": col("seed"), "val_accuracy": col("val_accuracy"),
                "accuracy": col("accuracy"),
                "val_minus_teacher": [r["val_accuracy"] - r["teacher_val_accuracy"] for r in rs],
                "test_minus_teacher": [r["accuracy"] - r["teacher_accuracy"] for r in rs],
                "finetune_seconds": col("finetune_seconds"), "images": col("images")})
  return out


def choose(table: list[dict]) -> dict:
  """The length with the best mean validation accuracy; the shorter on a tie (rounded to 0.01%)."""
  return max(table, key=lambda r: (round(float(np.mean(r["val_accuracy"])), 4), -r["epochs"]))


def _pts(values) -> str:
  return ", ".join(f"{100 * v:+.2f}" for v in values)


def markdown(runs: list[dict], table: list[dict], chosen: dict, budget: str, command: str,
             note: str) -> str:
  met = np.mean(chosen["test_minus_teacher"]) >= 0
  lines = [f"# Fine-tune length of our student at {budget}, seeds {chosen['seeds']}", "",
           f"Command: `{command}`", "", *([note, ""] if note else []),
           "Every workdir of a seed holds the same refined student (the same distillation, selection "
           "and refinement); only the KD fine-tune's length differs. Decided on the validation split "
           "(best mean over seeds); test is shown for the record. Cost: wall seconds of the "
           "fine-tune and of ours in all, and training images of ours in all (distill + score + "
           "refine + fine-tune). The comparison is with the teacher, so no baseline is trained "
           "here: no equal-total-cost comparison is made in this table.", "",
           "| seed | fine-tune epochs | val acc | test acc | val - teacher | test - teacher | "
           "fine-tune wall s | ours in all wall s | images |", "|---" * 9 + "|"]
  for r in sorted(runs, key=lambda r: (r["seed"], r["epochs"])):
    lines.append(f"| {r['seed']} | {r['epochs']:g} | {100 * r['val_accuracy']:.2f}% | "
                 f"{100 * r['accuracy']:.2f}% | {100 * (r['val_accuracy'] - r['teacher_val_accuracy']):+.2f} | "
                 f"{100 * (r['accuracy'] - r['teacher_accuracy']):+.2f} | {r['finetune_seconds']:.0f} | "
                 f"{r['overhead_seconds'] + r['finetune_seconds']:.0f} | {r['images']:,} |")
  lines += ["", "Means over seeds (per seed in brackets):", "",
            "| fine-tune epochs | val acc | test acc | val - teacher | test - teacher | fine-tune wall s |",
            "|---" * 6 + "|"]
  for r in table:
    lines.append(f"| {r['epochs']:g} | {100 * np.mean(r['val_accuracy']):.2f}% | "
                 f"{100 * np.mean(r['accuracy']):.2f}% | {100 * np.mean(r['val_minus_teacher']):+.2f} "
                 f"({_pts(r['val_minus_teacher'])}) | {100 * np.mean(r['test_minus_teacher']):+.2f} "
                 f"({_pts(r['test_minus_teacher'])}) | {np.mean(r['finetune_seconds']):.0f} |")
  lines += ["", f"Chosen on validation: **{chosen['epochs']:g} epochs**. Target (the student at or "
            f"above its teacher on test, mean of seeds): **{'met' if met else 'not met'}** "
            f"({100 * np.mean(chosen['test_minus_teacher']):+.2f})."]
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--budget", required=True, help="the budget folder, e.g. budget_macs_0.5")
  p.add_argument("--command", default="", help="the commands that made the workdirs")
  p.add_argument("--note", default="", help="a paragraph under the commands")
  p.add_argument("workdirs", nargs="+", help="one per fine-tune length and seed")
  args = p.parse_args()
  runs = [run(w, args.budget) for w in args.workdirs]
  check_like_with_like(runs)
  table = lengths(runs)
  chosen = choose(table)
  text = markdown(runs, table, chosen, args.budget, args.command, args.note)
  with open(args.out + ".md", "w") as f:
    f.write(text)
  with open(args.out + ".json", "w") as f:
    json.dump({"command": args.command, "budget": args.budget, "runs": runs, "lengths": table,
               "chosen_epochs": chosen["epochs"]}, f, indent=2)
  print(text)


if __name__ == "__main__":
  main()
