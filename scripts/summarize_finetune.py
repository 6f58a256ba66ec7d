"""How should our student's KD fine-tune be set (its length, its loss)? Workdirs that share
everything up to refinement and differ only in fine-tune settings (`finetune.*` of their configs),
per seed, side by side: validation and test accuracy, each against the teacher's, and what the
fine-tune cost. A variant is the set of fine-tune settings in which the workdirs differ. It is chosen
on the VALIDATION split (best mean over seeds; a tie goes to the variant given first: the base, or
the shorter); test is shown for the record and for the target "the student at or above its teacher
(mean of seeds)".

  .venv/bin/python scripts/summarize_finetune.py --out results/finetune_length_resnet20_50 \
      --budget budget_macs_0.5 --command "<commands>" runs/ft8_s0 runs/ft8_s1 runs/ft16_s0 runs/ft16_s1

With --stages distill,refine,finetune the variants may differ in the settings of those phases too
(a longer distillation, say); a seed's workdirs then hold different students (the plan may change),
and the table adds each student's cost and the overhead (distill + score + refine) it took.

With --base SUMMARY.json:NAME,NAME the base's runs come from a summary this script committed
earlier (its runs named NAME), for a base whose workdirs did not outlive their session; its settings
must cover the --stages compared.

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
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    sys.exit(f"error: {path} is not valid JSON ({str(e).splitlines()[0][:80]})")


def _flat(tree: dict, prefix: str = "finetune") -> dict:
  """{"finetune.train.epochs": 8, ...}: every leaf of the fine-tune's settings."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}.{key}"))
    else:
      out[f"{prefix}.{key}"] = value
  return out


def run(workdir: str, budget: str, stages: tuple[str, ...]) -> dict:
  """One workdir's student of `budget`: accuracies, its teacher's, the settings of `stages`, what the
  student costs to run and what each phase cost to train."""
  config = _read(os.path.join(workdir, "config.json"))
  plan = _read(os.path.join(workdir, budget, "select", "plan.json"))
  teacher = _read(os.path.join(workdir, "teacher", "result.json"))
  distill = _read(os.path.join(workdir, "distill", "result.json"))
  refine = _read(os.path.join(workdir, budget, "refine", "result.json"))
  fine = _read(os.path.join(workdir, budget, "finetune", "result.json"))
  overhead = distill["train_seconds"] + distill["score_seconds"] + refine["wall_seconds"]
  return {"workdir": os.path.basename(os.path.normpath(workdir)), "seed": config["seed"],
          "settings": {k: v for stage in stages for k, v in _flat(config[stage], stage).items()},
          "student_cost": plan["cost"], "cost_metric": plan["metric"],
          "val_accuracy": fine["val_accuracy"], "accuracy": fine["test_accuracy"],
          "teacher_val_accuracy": teacher["val_accuracy"], "teacher_accuracy": teacher["test_accuracy"],
          "finetune_seconds": fine["train_seconds"], "overhead_seconds": overhead,
          "refined_from": refine.get("inputs_digest"),  # the teacher, distillation and plan it read
          "images": distill["train_images"] + distill["score_images"] + refine["images"]
                    + fine["images"]}


def committed_runs(spec: str, stages: tuple[str, ...]) -> list[dict]:
  """The runs named in `spec` ("SUMMARY.json:NAME,NAME") from a committed summary, in that order."""
  path, _, names = spec.rpartition(":")
  if not path or not names:
    sys.exit(f"error: --base {spec!r}: give SUMMARY.json:WORKDIR_NAME[,WORKDIR_NAME...]")
  summary = _read(path)
  if not isinstance(summary, dict) or "runs" not in summary:
    sys.exit(f"error: --base: {path} is not a summary this script wrote (no runs)")
  runs = {r["workdir"]: r for r in summary["runs"]}
  missing = [n for n in names.split(",") if n not in runs]
  if missing:
    sys.exit(f"error: --base: {path} holds no run {', '.join(missing)} (it holds {', '.join(runs)})")
  picked = []
  for name in names.split(","):
    recorded = {k.split(".")[0] for k in runs[name]["settings"]}
    if not set(stages) <= recorded:
      sys.exit(f"error: --base: {path} recorded the settings of {sorted(recorded)} only; --stages "
               f"{','.join(stages)} needs all of them (summarize it again with those --stages)")
    settings = {k: v for k, v in runs[name]["settings"].items() if k.split(".")[0] in stages}
    picked.append(dict(runs[name], settings=settings, source=path))  # only the stages compared
  return picked


def label_variants(runs: list[dict], stages: tuple[str, ...]) -> list[str]:
  """Names each run's variant by the settings that differ between the workdirs ("train.epochs=16"
  when only the fine-tune's are compared, else "distill.train.epochs=0.5"); returns the variants in
  the order first given."""
  prefix = "finetune." if stages == ("finetune",) else ""
  what = "fine-tune" if prefix else "/".join(stages)
  keys = sorted({k for r in runs for k in r["settings"]
                 if len({json.dumps(q["settings"].get(k)) for q in runs}) > 1})
  if not keys:
    sys.exit(f"error: the workdirs do not differ in any {what} setting: give one workdir per "
             "variant and seed")
  for r in runs:
    r["variant"] = ", ".join(f"{k.removeprefix(prefix)}={r['settings'].get(k)}" for k in keys)
  return list(dict.fromkeys(r["variant"] for r in runs))


def check_like_with_like(runs: list[dict], same_student: bool) -> None:
  """Every variant must have run for the same seeds, and (same_student) a seed's variants from one
  refined student."""
  seeds = {v: sorted(r["seed"] for r in runs if r["variant"] == v) for v in {r["variant"] for r in runs}}
  if len({tuple(s) for s in seeds.values()}) != 1 or any(len(set(s)) != len(s) for s in seeds.values()):
    sys.exit(f"error: need one workdir per fine-tune variant and seed, the same seeds for every "
             f"variant (got seeds by variant: {seeds})")
  for seed in {r["seed"] for r in runs} if same_student else ():
    if len({r["refined_from"] for r in runs if r["seed"] == seed}) > 1:
      sys.exit(f"error: seed {seed}'s workdirs refined different students (other teacher, "
               "distillation or plan); copy one workdir after refinement for each variant")


def variants(runs: list[dict], order: list[str]) -> list[dict]:
  """Per variant (in `order`), the per-seed values (in seed order) and their means."""
  out = []
  for variant in order:
    rs = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["seed"])
    col = lambda key: [r[key] for r in rs]
    out.append({"variant": variant, "seeds": col("seed"), "val_accuracy": col("val_accuracy"),
                "accuracy": col("accuracy"),
                "val_minus_teacher": [r["val_accuracy"] - r["teacher_val_accuracy"] for r in rs],
                "test_minus_teacher": [r["accuracy"] - r["teacher_accuracy"] for r in rs],
                "finetune_seconds": col("finetune_seconds"), "images": col("images"),
                "student_cost": col("student_cost"), "overhead_seconds": col("overhead_seconds")})
  return out


def choose(table: list[dict]) -> dict:
  """The variant with the best mean validation accuracy (rounded to 0.01%); the first on a tie."""
  return max(table, key=lambda r: round(float(np.mean(r["val_accuracy"])), 4))  # max keeps the first


def _pts(values) -> str:
  return ", ".join(f"{100 * v:+.2f}" for v in values)


_SAME_STUDENT = ("Every workdir of a seed holds the same refined student (the same distillation, "
                 "selection and refinement); only the KD fine-tune's settings differ (the variant "
                 "column: the settings in which the workdirs differ).")
_OTHER_STUDENTS = ("The workdirs differ in the settings of the variant column (phases before the "
                   "fine-tune among them), so a seed's variants may hold different students: the "
                   "student column gives each one's cost, the overhead column what distillation, "
                   "scoring and refinement took.")


def markdown(runs: list[dict], table: list[dict], chosen: dict, budget: str, command: str,
             note: str, same_student: bool) -> str:
  met = np.mean(chosen["test_minus_teacher"]) >= 0
  order = [r["variant"] for r in table]
  extra = [] if same_student else [f"student {runs[0]['cost_metric']}", "overhead wall s"]
  cells = lambda r: [] if same_student else [f"{r['student_cost']:,.0f}", f"{r['overhead_seconds']:.0f}"]
  mean_cells = lambda r: [] if same_student else [
      " / ".join(f"{c:,.0f}" for c in r["student_cost"]), f"{np.mean(r['overhead_seconds']):.0f}"]
  row = lambda values: "| " + " | ".join(values) + " |"
  title = "Fine-tune variants" if same_student else "Recipe variants"
  lines = [f"# {title} of our student at {budget}, seeds {chosen['seeds']}", "",
           f"Command: `{command}`", "", *([note, ""] if note else []),
           (_SAME_STUDENT if same_student else _OTHER_STUDENTS) + " Decided on the validation split "
           "(best mean over seeds; a tie to the variant listed first); test is shown for the record. "
           "Cost: wall seconds of the fine-tune and of ours in all, and training images of ours in "
           "all (distill + score + refine + fine-tune). The comparison is with the teacher, so no "
           "baseline is trained here: no equal-total-cost comparison is made in this table.", "",
           row(["seed", "variant", *extra, "val acc", "test acc", "val - teacher", "test - teacher",
                "fine-tune wall s", "ours in all wall s", "images"]),
           "|---" * (9 + len(extra)) + "|"]
  for r in sorted(runs, key=lambda r: (r["seed"], order.index(r["variant"]))):
    lines.append(row([str(r["seed"]), r["variant"], *cells(r), f"{100 * r['val_accuracy']:.2f}%",
                      f"{100 * r['accuracy']:.2f}%",
                      f"{100 * (r['val_accuracy'] - r['teacher_val_accuracy']):+.2f}",
                      f"{100 * (r['accuracy'] - r['teacher_accuracy']):+.2f}",
                      f"{r['finetune_seconds']:.0f}",
                      f"{r['overhead_seconds'] + r['finetune_seconds']:.0f}", f"{r['images']:,}"]))
  lines += ["", "Means over seeds (per seed in brackets):", "",
            row(["variant", *extra, "val acc", "test acc", "val - teacher", "test - teacher",
                 "fine-tune wall s"]), "|---" * (6 + len(extra)) + "|"]
  for r in table:
    lines.append(row([r["variant"], *mean_cells(r), f"{100 * np.mean(r['val_accuracy']):.2f}%",
                      f"{100 * np.mean(r['accuracy']):.2f}%",
                      f"{100 * np.mean(r['val_minus_teacher']):+.2f} ({_pts(r['val_minus_teacher'])})",
                      f"{100 * np.mean(r['test_minus_teacher']):+.2f} ({_pts(r['test_minus_teacher'])})",
                      f"{np.mean(r['finetune_seconds']):.0f}"]))
  lines += ["", f"Chosen on validation: **{chosen['variant']}**. Target (the student at or "
            f"above its teacher on test, mean of seeds): **{'met' if met else 'not met'}** "
            f"({100 * np.mean(chosen['test_minus_teacher']):+.2f})."]
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--budget", required=True, help="the budget folder, e.g. budget_macs_0.5")
  p.add_argument("--command", default="", help="the commands that made the workdirs")
  p.add_argument("--note", default="", help="a paragraph under the commands")
  p.add_argument("--stages", default="finetune",
                  help="comma-separated phases whose settings may differ (distill,refine,finetune: "
                       "the students themselves may differ)")
  p.add_argument("--base", default="", help="SUMMARY.json:NAME,NAME: the base's runs from a "
                 "summary committed earlier (its workdirs are gone), put before the workdirs")
  p.add_argument("workdirs", nargs="+", help="one per variant and seed, the base first")
  args = p.parse_args()
  stages = tuple(args.stages.split(","))
  if not set(stages) <= {"distill", "refine", "finetune"} or "finetune" not in stages:
    sys.exit(f"error: --stages {args.stages!r}: give phases among distill,refine,finetune, "
             "finetune among them")
  same_student = stages == ("finetune",)
  runs = ((committed_runs(args.base, stages) if args.base else [])
          + [run(w, args.budget, stages) for w in args.workdirs])
  order = label_variants(runs, stages)
  check_like_with_like(runs, same_student)
  table = variants(runs, order)
  chosen = choose(table)
  note = args.note
  if args.base:
    base = [r["workdir"] for r in runs if "source" in r]
    note += (f"\n\nThe base rows ({', '.join(base)}) are read from `{runs[0]['source']}`, the "
             "summary their run committed (their workdirs did not outlive that session).")
  text = markdown(runs, table, chosen, args.budget, args.command, note.strip(), same_student)
  with open(args.out + ".md", "w") as f:
    f.write(text)
  with open(args.out + ".json", "w") as f:
    json.dump({"command": args.command, "budget": args.budget, "runs": runs, "variants": table,
               "chosen": chosen["variant"]}, f, indent=2)
  print(text)


if __name__ == "__main__":
  main()
