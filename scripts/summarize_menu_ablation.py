"""Does a candidate menu change what our student is worth? Ours with the default menu (finished
sweeps whose Torch-Pruning peer ran, scripts/peer_pruning.py) against ours with another menu (the
same recipe, seeds and budgets, run up to the fine-tune), beside the pruned network, per budget and
seed; decided on the VALIDATION split, test shown for the record.

  .venv/bin/python scripts/summarize_menu_ablation.py --out results/inner_ablation_resnet20_8ep \
      --label "slim + inner" --command "<commands>" \
      --control runs/sweep8_s0,runs/sweep8_s1 --variant runs/inner8_s0,runs/inner8_s1

Latency: PyTorch eager, batch 1, 1 thread, of the three networks of a budget and seed measured in
this one process, in alternating rounds (the median of the rounds' medians), so a load on the
machine weighs on all three alike. Writes <out>.md and <out>.json.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

import torch  # noqa: E402

import peer_pruning  # noqa: E402  (beside this script)
from compactkd_jax import artifacts, cost  # noqa: E402

LATENCY_ROUNDS = 5


def _read(path: str) -> dict:
  if not os.path.exists(path):
    sys.exit(f"error: {path} is missing: let the run that writes it finish")
  with open(path) as f:
    return json.load(f)


def _kinds(choice: dict) -> dict:
  return dict(collections.Counter(c.rsplit("_", 1)[0] if c[-1].isdigit() else c
                                  for c in choice.values()))


def ours(workdir: str, folder: str) -> dict:
  """Our student of one budget folder: accuracies, costs, the blocks chosen, what it cost."""
  d = os.path.join(workdir, folder)
  summary = os.path.join(workdir, peer_pruning.PEER_DIR, "ours.json")
  if not os.path.exists(os.path.join(d, "finetune")) and os.path.exists(summary):
    return ours_from_summary(workdir, folder, summary)
  fine, select = _read(os.path.join(d, "finetune", "result.json")), _read(os.path.join(d, "select",
                                                                                        "result.json"))
  distill = _read(os.path.join(workdir, "distill", "result.json"))
  refine = _read(os.path.join(d, "refine", "result.json"))
  _, variables, spec = artifacts.load_model(os.path.join(d, "finetune"))
  shape = tuple(spec["image_shape"])
  overhead = distill["train_seconds"] + distill["score_seconds"] + refine["wall_seconds"]
  images = distill["train_images"] + distill["score_images"] + refine["images"] + fine["images"]
  return {"val_accuracy": fine["val_accuracy"], "accuracy": fine["test_accuracy"],
          "macs": select["cost"], "relative_macs": select["relative_cost"],
          "params": cost.count_params(variables),
          "kinds": _kinds(select["choice"]), "choice": select["choice"],
          "candidates": distill["candidates"],
          "overhead_seconds": overhead, "finetune_seconds": fine["train_seconds"],
          "overhead_ratio": overhead / fine["train_seconds"],
          "seconds": overhead + fine["train_seconds"], "images": images,
          "_torch": peer_pruning.our_student(os.path.join(d, "finetune"), shape[-1]),
          "_shape": shape}


def ours_from_summary(workdir: str, folder: str, summary: str) -> dict:
  """Our student of a workdir rebuilt up to refinement: accuracies and cost from the finished
  sweep's summary that peer_pruning.py --ours checked the rebuilt plan against and copied there;
  the network (for params and latency) is the refined student, the fine-tune's architecture."""
  sweep = _read(summary)
  res = sweep["budgets"][folder]
  plan, c = res["plan"], res["cost"]
  model_dir = peer_pruning.student_dir(os.path.join(workdir, folder))
  _, variables, spec = artifacts.load_model(model_dir)
  shape = tuple(spec["image_shape"])
  return {"val_accuracy": res["student"]["val_accuracy"], "accuracy": res["student"]["accuracy"],
          "macs": plan["cost"], "relative_macs": plan["cost"] / plan["teacher_cost"],
          "params": cost.count_params(variables), "kinds": _kinds(plan["choice"]),
          "choice": plan["choice"],
          "candidates": _read(os.path.join(workdir, "distill", "result.json"))["candidates"],
          "overhead_seconds": c["overhead_seconds"], "finetune_seconds": c["seconds"]["finetune"],
          "overhead_ratio": c["overhead_ratio"], "seconds": c["total_seconds"],
          "images": sum(c["images"].values()),
          "source": sweep.get("source", summary),
          "_torch": peer_pruning.our_student(model_dir, shape[-1]), "_shape": shape}


def pruned(workdir: str, folder: str) -> dict:
  run_dir = os.path.join(workdir, folder, peer_pruning.PEER_DIR)
  chosen = [f for f in sorted(os.listdir(run_dir)) if f.endswith("_epochs")]
  results = {f: _read(os.path.join(run_dir, f, "result.json")) for f in chosen}
  best = max(results, key=lambda f: results[f]["val_accuracy"])  # as peer_pruning chose it
  r = results[best]
  model = torch.load(os.path.join(run_dir, best, "model.pt"), weights_only=False).eval()
  return {"val_accuracy": r["val_accuracy"], "accuracy": r["accuracy"], "macs": r["macs"],
          "relative_macs": r["macs"] / r["teacher_macs"], "params": r["params"],
          "seconds": r["train_seconds"] + r["prune_seconds"], "images": r["images"],
          "variant": r["variant"], "_torch": model}


def latencies(models: dict, shape) -> dict:
  """{name: median ms}: every model measured once per round, the rounds' medians' median."""
  rounds = {k: [] for k in models}
  for _ in range(LATENCY_ROUNDS):
    for name, model in models.items():
      rounds[name].append(peer_pruning.latency(model, shape, runs=100)["median_ms"])
  return {k: float(np.median(v)) for k, v in rounds.items()}


def rows(controls: list[str], variants: list[str]) -> list[dict]:
  # A budget some seeds' variant did not run (a shorter sweep) has rows for the others only.
  folders = sorted({f for v in variants for f in os.listdir(v) if f.startswith("budget_")},
                   key=lambda f: -float(f.rsplit("_", 1)[1]))
  table = []
  for folder in folders:
    for c, v in zip(controls, variants):
      if not os.path.isdir(os.path.join(v, folder)):
        continue
      row = {"budget": folder, "seed": _read(os.path.join(v, "config.json"))["seed"],
             "default": ours(c, folder), "variant": ours(v, folder), "pruned": pruned(c, folder)}
      shape = row["default"]["_shape"]
      lat = latencies({k: row[k]["_torch"] for k in ("default", "variant", "pruned")}, shape)
      for k in ("default", "variant", "pruned"):
        row[k]["latency_ms"] = lat[k]
        row[k].pop("_torch")
        row[k].pop("_shape", None)
      table.append(row)
  return table


def markdown(table: list[dict], label: str, command: str, peer_table: str) -> str:
  lines = [f"# Candidate menu ablation: default against {label}", "",
           f"Commands: {command}", "",
           "Test accuracy is shown for the record; the decision column is validation. MACs as "
           "counted by the project's convention (percent of the teacher); latency: PyTorch eager, "
           "batch 1, 1 thread, median, the three networks of a row measured side by side in "
           f"{LATENCY_ROUNDS} alternating rounds. Cost: wall seconds and images processed in "
           "training (ours: distill + score + refine + fine-tune; pruning: pruning + fine-tune), "
           "on this 2-core CPU; overhead: (distill + score + refine) / fine-tune wall. Every network "
           "is fine-tuned for the same 8 epochs (equal fine-tune epochs, not equal total cost: "
           f"the equal-total-cost rows of the default menu are in {peer_table}). "
           "Every setting is the default recipe's, chosen on the validation split; the menu is the "
           "one thing that differs.", "",
           *_sources(table),
           "| budget | seed | network | val acc | test acc | MACs | params | latency ms | wall s | "
           "images | blocks chosen | overhead |", "|---" * 12 + "|"]
  names = {"default": "ours, default menu", "variant": f"ours, {label}",
           "pruned": "Torch-Pruning (equal epochs)"}
  for r in table:
    for k in ("default", "variant", "pruned"):
      x = r[k]
      kinds = ", ".join(f"{n} {c}" for n, c in sorted(x["kinds"].items())) if "kinds" in x else \
          x.get("variant", "")
      lines.append(f"| {r['budget']} | {r['seed']} | {names[k]} | {100 * x['val_accuracy']:.2f}% | "
                   f"{100 * x['accuracy']:.2f}% | {x['macs']:,.0f} ({100 * x['relative_macs']:.1f}%)"
                   f" | {x['params']:,} | {x['latency_ms']:.3f} | {x['seconds']:.0f} | "
                   f"{x['images']:,} | {kinds} | "
                   + (f"{x['overhead_ratio']:.3f}" if "overhead_ratio" in x else "-") + " |")
  lines += ["", "## Means over seeds", "",
            "| budget | network | val acc | test acc | latency ms | variant minus default, per seed "
            "(val; test) | variant minus pruned, per seed (val; test) |", "|---" * 7 + "|"]
  for budget in dict.fromkeys(r["budget"] for r in table):
    rs = [r for r in table if r["budget"] == budget]
    for k in ("default", "variant", "pruned"):
      mean = lambda key: np.mean([r[k][key] for r in rs])
      gaps = ["", ""]
      if k == "variant":
        gaps = ["; ".join(", ".join(f"{100 * (r['variant'][acc] - r[o][acc]):+.2f}" for r in rs)
                          for acc in ("val_accuracy", "accuracy")) for o in ("default", "pruned")]
      lines.append(f"| {budget} | {names[k]} | {100 * mean('val_accuracy'):.2f}% | "
                   f"{100 * mean('accuracy'):.2f}% | {mean('latency_ms'):.3f} | {gaps[0]} | "
                   f"{gaps[1]} |")
  return "\n".join(lines) + "\n"


def _sources(table: list[dict]) -> list[str]:
  """A paragraph naming the sweep summaries the default menu's rows came from, if any did."""
  sources = sorted({r["default"]["source"] for r in table if "source" in r["default"]})
  if not sources:
    return []
  return [f"The default menu's rows come from the finished sweeps {', '.join(sources)}: their "
          "workdirs were rebuilt up to refinement (plans checked equal by peer_pruning.py --ours), "
          "so their accuracies, walls and images are that run's (compare images, not walls, "
          "across sessions), and their latency is the refined student's, the same architecture.",
          ""]


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--label", required=True, help="what the variant's menu is, for the table")
  p.add_argument("--command", default="", help="the commands that made the workdirs")
  p.add_argument("--control", required=True, help="finished sweeps with the peer, comma-separated")
  p.add_argument("--variant", required=True, help="the same seeds with the other menu")
  p.add_argument("--peer_table", default="results/peer_resnet20_8ep.md",
                 help="the peer table with the default menu's equal-total-cost rows")
  args = p.parse_args()
  controls, variants = args.control.split(","), args.variant.split(",")
  if len(controls) != len(variants):
    sys.exit("error: --control and --variant need one workdir per seed each, in the same order")
  torch.set_num_threads(1)
  table = rows(controls, variants)
  text = markdown(table, args.label, args.command, args.peer_table)
  with open(args.out + ".md", "w") as f:
    f.write(text)
  with open(args.out + ".json", "w") as f:
    json.dump({"command": args.command, "rows": table}, f, indent=2, sort_keys=True)
  print(text)


if __name__ == "__main__":
  main()
