"""Ablations of a config's choices, decided on the VALIDATION split (the test column is shown for
the record, never used to choose).

  .venv/bin/python scripts/ablate.py --config configs/quickstart.py --workdir runs/ablate \
      --out results/ablation_quickstart [--seeds 0,1]

One base run per seed goes up to the fine-tune; every variant forks the base workdir after the
last phase it shares with it (copying those phases' files, so the teacher and the distillation are
not redone) and runs the rest with its overrides. Baseline variants train one baseline kind at the
epochs that equal-total-cost matching gave it in the default run (`--baseline_epochs`). Resumable:
a finished variant is skipped. Writes <out>.md and <out>.json.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UP_TO_FINETUNE = "--config.phases=('teacher','distill','select','refine','finetune')"
INNER_MENU = ("--config.distill.candidates=('keep','slim_0.25','slim_0.5','slim_0.75',"
              "'inner_0.25','inner_0.5','inner_0.75','skip')")
# Files and folders of each phase, to fork a workdir after it.
PHASE_FILES = {"teacher": ["teacher"], "distill": ["distill", "checkpoints/distill*"],
               "select": ["select"], "refine": ["refine", "checkpoints/refine_*"]}
ORDER = ("teacher", "distill", "select", "refine")


def variants(baseline_epochs: float):
  """(name, what it decides, fork after, overrides, result folder)."""
  base = lambda kind, extra: ["--config.phases=('teacher','distill','select','baselines')",
                              f"--config.baselines.kinds=('{kind}',)",
                              "--config.baselines.match=epochs",
                              f"--config.baselines.train.epochs={baseline_epochs}", *extra]
  return [
      ("ours: default", "-", None, [], "finetune"),
      ("ours: feature hints beta=1", "finetune.kd.hints", "refine",
       [UP_TO_FINETUNE, "--config.finetune.kd.hints=1.0"], "finetune"),
      ("ours: selection damage = accuracy", "select.damage", "distill",
       [UP_TO_FINETUNE, "--config.select.damage=accuracy"], "finetune"),
      # The per-block damages add up blocks scored one at a time; the whole assembled student of
      # each of the 4 least-damage plans also shows how their errors compound.
      ("ours: re-rank the 4 best plans", "select.rerank", "distill",
       [UP_TO_FINETUNE, "--config.select.rerank=4"], "finetune"),
      ("ours: no refinement", "refine on/off", "select",
       ["--config.phases=('teacher','distill','select','finetune')"], "finetune"),
      # KD alpha 0.5 won on validation for the 50% inner student at 8 epochs
      # (results/finetune_loss_resnet20_50.md); the default is decided on the recipe it serves.
      ("ours: fine-tune KD alpha 0.5", "finetune.kd.alpha", "refine",
       [UP_TO_FINETUNE, "--config.finetune.kd.alpha=0.5"], "finetune"),
      ("ours: fine-tune lr 0.05", "finetune lr", "refine",
       [UP_TO_FINETUNE, "--config.finetune.train.learning_rate=0.05"], "finetune"),
      # The method's overhead is mostly these steps (43 distill, 43 per refined block at 0.1).
      ("ours: distill + refine 0.05 epoch", "distill/refine length", "teacher",
       [UP_TO_FINETUNE, "--config.distill.train.epochs=0.05", "--config.refine.train.epochs=0.05"],
       "finetune"),
      ("ours: distill + refine 0.2 epoch", "distill/refine length", "teacher",
       [UP_TO_FINETUNE, "--config.distill.train.epochs=0.2", "--config.refine.train.epochs=0.2"],
       "finetune"),
      # Inner candidates (a basic block narrowed between its two convs, as a pruner leaves it)
      # won on validation at 8 epochs (results/inner_ablation_resnet20_8ep.md) but cost 1.5x the
      # distillation; the shorter length is the way to pay for them.
      ("ours: slim + inner menu", "distill.candidates menu", "teacher",
       [UP_TO_FINETUNE, INNER_MENU], "finetune"),
      ("ours: slim + inner menu, distill + refine 0.05 epoch", "distill.candidates menu and length",
       "teacher", [UP_TO_FINETUNE, INNER_MENU, "--config.distill.train.epochs=0.05",
                   "--config.refine.train.epochs=0.05"], "finetune"),
      ("KD-only baseline: alpha 0.9", "baselines.kd.alpha", "select",
       base("kd", ["--config.baselines.kd.alpha=0.9"]), "baseline_kd"),
      ("KD-only baseline: alpha 0.5", "baselines.kd.alpha", "select",
       base("kd", ["--config.baselines.kd.alpha=0.5"]), "baseline_kd"),
      ("scratch baseline: lr 0.1", "baselines lr", "select",
       base("scratch", ["--config.baselines.train.learning_rate=0.1"]), "baseline_scratch"),
      ("scratch baseline: lr 0.05", "baselines lr", "select",
       base("scratch", ["--config.baselines.train.learning_rate=0.05"]), "baseline_scratch"),
  ]


def fork(base: str, target: str, after: str) -> None:
  if os.path.exists(os.path.join(target, "config.json")):
    return  # forked before (resume)
  os.makedirs(target, exist_ok=True)
  shutil.copy(os.path.join(base, "config.json"), target)
  for phase in ORDER[:ORDER.index(after) + 1]:
    for pattern in PHASE_FILES[phase]:
      for src in glob.glob(os.path.join(base, pattern)):
        dst = os.path.join(target, os.path.relpath(src, base))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)


def run(config: str, workdir: str, overrides, seed: int, common=()) -> None:
  cmd = [sys.executable, "-m", "compactkd_jax.main", "--config", config, "--workdir", workdir,
         f"--config.seed={seed}", *common, *overrides]
  print("+", " ".join(cmd), flush=True)
  subprocess.run(cmd, cwd=REPO, check=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True)
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--seeds", default="0")
  p.add_argument("--baseline_epochs", type=float, default=2.5)
  p.add_argument("--only", default="",
                 help="run only the variants whose name or 'decides' contains one of these "
                      "comma-separated words (the default run always), e.g. --only=length")
  p.add_argument("--collect", action="store_true",
                 help="run nothing: tabulate the variants that have finished")
  p.add_argument("--set", action="append", default=[],
                 help="an override for every run (the base recipe), e.g. "
                      "--set=--config.select.damage=mse; a variant's own overrides come after")
  args = p.parse_args()
  rows = []
  for seed in (int(s) for s in args.seeds.split(",")):
    base = os.path.join(args.workdir, f"seed{seed}", "default")
    if not args.collect:
      run(args.config, base, [UP_TO_FINETUNE], seed, args.set)
    for name, decides, after, overrides, folder in variants(args.baseline_epochs):
      if after is not None and args.only and not any(w in name or w in decides
                                                     for w in args.only.split(",")):
        continue
      wd = base if after is None else os.path.join(args.workdir, f"seed{seed}", _slug(name))
      if after is not None and not args.collect:
        fork(base, wd, after)
        run(args.config, wd, overrides, seed, args.set)
      if not os.path.exists(os.path.join(wd, folder, "result.json")):
        continue  # --collect: not run (yet)
      with open(os.path.join(wd, folder, "result.json")) as f:
        res = json.load(f)
      res = res.get(folder.removeprefix("baseline_"), res)  # baselines/result.json nests kinds
      rows.append({"variant": name, "decides": decides, "seed": seed,
                   "val_accuracy": res["val_accuracy"], "test_accuracy": res["test_accuracy"],
                   "train_seconds": res["train_seconds"],
                   "overhead_seconds": _overhead(wd) if folder == "finetune" else None})
  write(rows, args)


def _slug(name: str) -> str:
  """A variant's folder, from its name (stable when variants are added to the list)."""
  return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def _overhead(workdir: str) -> float:
  """What the method spent before its fine-tune: distill training and scoring, re-ranking plans
  (select.rerank), and refinement (what equal_cost.ours counts)."""
  total = 0.0
  for phase, keys in (("distill", ("train_seconds", "score_seconds")),
                      ("select", ("rerank_seconds",)), ("refine", ("wall_seconds",))):
    path = os.path.join(workdir, phase, "result.json")
    if os.path.exists(path):
      with open(path) as f:
        res = json.load(f)
      total += sum(res.get(k, 0.0) for k in keys)
  return total


def write(rows, args) -> None:
  by_name = {}
  for r in rows:
    by_name.setdefault((r["variant"], r["decides"]), []).append(r)
  lines = ["# Ablation: " + os.path.basename(args.config), "",
           "Command: `.venv/bin/python scripts/ablate.py " + " ".join(sys.argv[1:]) + "`", "",
           "Base recipe: the config" + (" with " + " ".join(f"`{o}`" for o in args.set)
                                         if args.set else "") + ".",
           "Decisions use the validation column only (5,000 images held out of the training file);",
           "test accuracy is shown for the record. Mean over the seeds of each row.", "",
           "| variant | decides | seeds | val acc | test acc | train wall | overhead (distill + "
           "score + re-rank + refine) | overhead / train wall |", "|---|---|---|---|---|---|---|---|"]
  for (name, decides), rs in by_name.items():
    mean = lambda k: 100 * np.mean([r[k] for r in rs])
    overhead = [r["overhead_seconds"] for r in rs if r.get("overhead_seconds") is not None]
    # The report's overhead ratio: per seed, against that run's own fine-tune wall.
    ratio = [r["overhead_seconds"] / r["train_seconds"] for r in rs
             if r.get("overhead_seconds") is not None]
    seeds = ",".join(str(r["seed"]) for r in rs)
    lines.append(f"| {name} | {decides} | {seeds} | {mean('val_accuracy'):.2f}% | "
                 f"{mean('test_accuracy'):.2f}% | "
                 f"{np.mean([r['train_seconds'] for r in rs]):.0f} s | "
                 + (f"{np.mean(overhead):.0f} s | {np.mean(ratio):.3f} |" if overhead else "- | - |"))
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(args.out + ".json", "w") as f:
    json.dump(rows, f, indent=2)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
