"""Ours against Torch-Pruning (scripts/peer_pruning.py), scratch, KD-only and the teacher: one table
and one measured trade-off plot over the budget sweeps of several seeds.

  .venv/bin/python scripts/summarize_peer.py --out results/peer_resnet20 \
      --command "<the commands that made the workdirs>" runs/sweep_acc_s0 runs/sweep_acc_s1

Writes <out>.md, <out>.json and <out>.png. Per budget and seed, the Torch-Pruning variant is the one
with the better validation accuracy at equal fine-tune epochs (peer_pruning.py chose it so, and
trained only it at equal total cost); the test split is read only here.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import summarize_tradeoff  # noqa: E402  (beside this script)
from compactkd_jax import sweep  # noqa: E402
from compactkd_jax.errors import UserError  # noqa: E402

PEER_DIR = "peer_pruning"


def _read(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def peer_runs(budget_dir: str) -> dict:
  """{"epochs": result of the chosen variant, "total_cost": its result (None until it has run: the
  peer runs every budget at equal epochs first), "latency": ...}."""
  out = os.path.join(budget_dir, PEER_DIR)
  if not os.path.isdir(out):
    sys.exit(f"error: {budget_dir} has no {PEER_DIR}/: run scripts/peer_pruning.py on it first")
  if not os.path.exists(os.path.join(out, "latency.json")):
    sys.exit(f"error: {out} is unfinished: let scripts/peer_pruning.py finish")
  runs = {f: _read(os.path.join(out, f, "result.json")) for f in sorted(os.listdir(out))
          if os.path.exists(os.path.join(out, f, "result.json"))}
  at_cost = [r for r in runs.values() if r["match"] == "total_cost"]
  variants = {r["variant"]: r for r in runs.values() if r["match"] == "epochs"}
  variant = (at_cost[0]["variant"] if at_cost else
             max(variants, key=lambda v: variants[v]["val_accuracy"]))
  return {"epochs": variants[variant], "total_cost": at_cost[0] if at_cost else None,
          "variants": variants,
          "latency": _read(os.path.join(out, "latency.json"))}


def _pct(values) -> str:
  v = 100 * np.asarray(values, float)
  return f"{v.mean():.2f}%" + (f" ({v.min():.2f}-{v.max():.2f})" if len(v) > 1 else "")


def our_sweep(workdir: str) -> dict:
  """The workdir's finished sweep, or the one peer_pruning.py --ours compared against (a workdir
  rebuilt up to refinement)."""
  copied = os.path.join(workdir, PEER_DIR, "ours.json")
  if not os.path.exists(os.path.join(workdir, "results.json")) and os.path.exists(copied):
    return _read(copied)
  return sweep.load(workdir)


def rows(workdirs: list[str], summaries: list[dict]) -> list[dict]:
  table = []
  folders = [r["folder"] for r in summaries[0]["sweep"]
             if os.path.isdir(os.path.join(workdirs[0], r["folder"], PEER_DIR))]
  for folder in folders:
    ours = [s["budgets"][folder] for s in summaries]
    peers = [peer_runs(os.path.join(w, folder)) for w in workdirs]
    table.append({
        "budget": sweep.summary_row(ours[0])["budget"], "folder": folder,
        "teacher": {"accuracy": [o["teacher"]["accuracy"] for o in ours],
                    "macs": ours[0]["teacher"]["macs"], "params": ours[0]["teacher"]["params"],
                    "latency_ms": [p["latency"]["teacher"]["median_ms"] for p in peers]},
        "ours": _method([o["student"] for o in ours], [o["cost"]["total_seconds"] for o in ours],
                        [sum(o["cost"]["images"].values()) for o in ours],
                        [p["latency"]["ours"]["median_ms"] for p in peers]),
        **{k: _method([o["baselines"][k] for o in ours]) for k in ours[0]["baselines"]},
        **{f"prune_{m}": _method([p[m] for p in peers], [p[m]["train_seconds"] + p[m]["prune_seconds"]
                                                         for p in peers],
                                 [p[m]["images"] for p in peers],
                                 [p[m]["latency"]["median_ms"] for p in peers],
                                 variants=[p[m]["variant"] for p in peers],
                                 val_by_variant=[{v: r["val_accuracy"] for v, r in p["variants"].items()}
                                                 for p in peers])
           for m in ("epochs", "total_cost") if all(p[m] is not None for p in peers)}})
  return table


def _method(runs, seconds=None, images=None, latency=None, **extra) -> dict:
  return {"accuracy": [r["accuracy"] for r in runs], "val_accuracy": [r["val_accuracy"] for r in runs],
          "macs": [r["macs"] for r in runs], "params": [r["params"] for r in runs],
          "seconds": seconds or [r["train_seconds"] for r in runs],
          "images": images or [r["train_images"] for r in runs],
          "epochs": [r.get("epochs") for r in runs],
          **({"latency_ms": latency} if latency else {}), **extra}


LABELS = {"ours": "ours (block-wise KD)", "prune_epochs": "Torch-Pruning, equal fine-tune epochs",
          "prune_total_cost": "Torch-Pruning, equal total cost", "kd": "KD only, equal total cost",
          "scratch": "scratch, equal total cost"}


def markdown(table: list[dict], seeds: list, command: str, sources: list[str],
             note: str = "") -> str:
  lines = [f"# Ours against structured pruning (Torch-Pruning 1.6.1), seeds {seeds}", "",
           f"Commands: {command}", ""] + ([note, ""] if note else [])
  if sources:
    lines += [f"Ours and the baselines: from the finished sweeps {', '.join(sources)}; the "
              "peer ran later on workdirs rebuilt up to refinement (plans checked equal), its "
              "steps matched to those sweeps' recorded cost. Their walls were measured in an "
              "earlier session (this CPU's speed differs between sessions): compare images "
              "processed, not walls.", ""]
  lines += ["Test accuracy, mean (min-max) over seeds; MACs and params as counted by the project's "
            "convention (mean over seeds where the network differs per seed); wall: training "
            "seconds (ours: distill + score + refine + fine-tune; pruning: pruning + fine-tune); "
            "images: training images processed; latency: PyTorch eager, batch 1, 1 thread, median "
            "(ours through its PyTorch mirror).", "",
            "Choices: Torch-Pruning's variant by validation accuracy at equal fine-tune epochs "
            "(below each table); our recipe and the baselines' settings as chosen on the "
            "validation split for the runs that made the workdirs (their reports say where); the "
            "test split is read only by this table.", ""]
  for r in table:
    t = r["teacher"]
    lines += [f"## {r['budget']}", "",
              "| method | test acc | val acc | MACs | params | epochs | wall s | images | "
              "latency ms | gap: ours minus this (per seed) |", "|---" * 10 + "|"]
    for m in [m for m in LABELS if m in r]:
      v = r[m]
      gap = "" if m == "ours" else ", ".join(
          f"{100 * (a - b):+.2f}" for a, b in zip(r["ours"]["accuracy"], v["accuracy"]))
      epochs = [e for e in v["epochs"] if e is not None]
      cells = [LABELS[m], _pct(v["accuracy"]), _pct(v["val_accuracy"]), f"{np.mean(v['macs']):,.0f}",
               f"{np.mean(v['params']):,.0f}", f"{np.mean(epochs):.2f}" if epochs else "-",
               f"{np.mean(v['seconds']):.0f}", f"{np.mean(v['images']):,.0f}",
               f"{np.mean(v['latency_ms']):.3f}" if "latency_ms" in v else "-", gap]
      lines.append("| " + " | ".join(cells) + " |")
    if "prune_total_cost" not in r:
      lines.append("| Torch-Pruning, equal total cost | not run yet | | | | | | | | |")
    lines.append(f"| teacher | {_pct(t['accuracy'])} | | {t['macs']:,} | {t['params']:,} | | | | "
                 f"{np.mean(t['latency_ms']):.3f} | |")
    chosen = r["prune_epochs"]
    lines += ["", "Torch-Pruning variant per seed (chosen on validation at equal epochs): " +
              "; ".join(f"{v} (val: " + ", ".join(f"{k} {100 * a:.2f}" for k, a in vals.items()) + ")"
                        for v, vals in zip(chosen["variants"], chosen["val_by_variant"])), ""]
  return "\n".join(lines) + "\n"


def points(table: list[dict]) -> tuple[list[dict], dict]:
  out = []
  for r in table:
    for m in LABELS:
      if m in r:
        out.append({"method": m, "macs": float(np.mean(r[m]["macs"])),
                    "params": float(np.mean(r[m]["params"])), "accuracies": r[m]["accuracy"]})
  t = table[0]["teacher"]
  return out, {"macs": t["macs"], "params": t["params"], "accuracies": t["accuracy"]}


def main() -> None:
  args, seeds = summarize_tradeoff.parse_args(__doc__.splitlines()[0])
  try:
    summaries = [our_sweep(w) for w in args.workdirs]
    table = rows(args.workdirs, summaries)
    sources = [s["source"] for s in summaries if "source" in s]
  except UserError as e:
    raise SystemExit(f"error: {e}")
  pts, teacher = points(table)
  summarize_tradeoff.write(args.out, markdown(table, seeds, args.command, sources, args.note),
                           {"command": args.command, "seeds": seeds, "rows": table}, pts, teacher,
                           seeds)


if __name__ == "__main__":
  main()
