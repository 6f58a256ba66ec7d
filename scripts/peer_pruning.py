"""The structured-pruning peer: Torch-Pruning (DepGraph, pinned 1.6.1) on the same teacher, to the
same MAC budget, fine-tuned with the same recipe as our student, beside our finished run.

  .venv/bin/python scripts/peer_pruning.py --workdir runs/sweep_acc_s0

For every budget of the workdir (each budget_* folder of a sweep, or the single run):
1. The teacher is exported to PyTorch (compactkd_jax.export_torch) into the zoo module of
   scripts/torch_baseline/models.py; its MACs by the forward-hook counter must equal the project's
   cost.network_costs within 1% (the same convention; tests/test_torch_macs.py checks the counters
   agree on every zoo family).
2. Each variant prunes a copy of it with `MetaPruner` and group L2-magnitude importance
   (`GroupMagnitudeImportance(p=2)`), the recipe of Torch-Pruning's CIFAR benchmarks: progressive
   pruning in `--iterative_steps` small steps until the MACs are at most the plan's limit.
   "uniform": the same ratio in every layer; "global": one ranking across layers.
   Every budget and variant is pruned before any training, so a budget the pruner cannot reach
   stops the run with one line and nothing trained.
3. The pruned network is fine-tuned in PyTorch with our fine-tune's recipe (scripts/torch_baseline/
   finetune.py: epochs, SGD + Nesterov, cosine, weight decay, crop + flip, (1 - alpha) CE + alpha
   Hinton KD from the same teacher; config finetune.*), on the same training split, for
     "epochs": our fine-tune's steps (equal fine-tune epochs), and
     "total_cost": our fine-tune's steps x (our total wall / our fine-tune wall): the images our
       fine-tune loop would have seen in the wall time everything that made our student took
       (distill + score + refine + fine-tune). Pruning itself costs seconds (recorded).
   The variant with the better validation accuracy at equal epochs is the one trained at equal
   total cost.
4. Batch-1 latency (median and p90 of 200 runs after 20 warm-ups, 1 thread) in PyTorch of the
   teacher, the pruned network and our student (its PyTorch mirror), in the same process.

--ours: our run's results from a finished sweep's results.json (e.g. the committed
results/tradeoff_resnet56_8ep_runs/seed0/results.json) instead of the workdir's own, for a workdir
rebuilt only up to refinement (workdirs do not outlive a session; the runs are deterministic). Its
plans (choice and MAC limit per budget) must equal the rebuilt workdir's; our student's latency is
then measured on the refined student (the fine-tune does not change the architecture), and the
summary is copied to <workdir>/peer_pruning/ours.json for scripts/summarize_peer.py.

Results: <budget folder>/peer_pruning/<variant>_<match>/result.json (skipped when present, so an
interrupted run resumes at the next unfinished one) and <budget folder>/peer_pruning/latency.json.
scripts/summarize_peer.py gathers them with ours and the baselines into one table and plot.
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

import ml_collections  # noqa: E402

from compactkd_jax import artifacts, cost, data, export_torch, files, sweep, train  # noqa: E402
from compactkd_jax.errors import UserError, missing_extra  # noqa: E402

try:  # PyTorch and Torch-Pruning come with the test extra, not with the quickstart's setup
  import torch  # noqa: E402
  import torch_pruning as tp  # noqa: E402
  from torch_baseline import finetune, models as tm  # noqa: E402
except ModuleNotFoundError as e:
  raise SystemExit(missing_extra(e, "to prune the teacher")) from None

PEER_DIR = "peer_pruning"
VARIANTS = ("uniform", "global")
MATCHES = ("epochs", "total_cost")
CONVENTION_TOLERANCE = 0.01


def log(msg: str) -> None:
  print(f"[peer_pruning] {msg}", flush=True)


def read_plan(budget_dir: str) -> dict:
  """The budget's plan (select/plan.json; workdirs of older versions kept it at the top)."""
  path = os.path.join(budget_dir, "select", "plan.json")
  return read_json(path if os.path.exists(path) else os.path.join(budget_dir, "plan.json"))


def budget_dirs(workdir: str, only: list[str], finished: bool = True) -> list[str]:
  """Each budget's folder of a sweep (those in `only`, when given), or the run itself; each with a
  finished report when `finished`."""
  folders = sorted(f for f in os.listdir(workdir) if f.startswith(sweep.FOLDER_PREFIX))
  missing = [f for f in only if f not in folders]
  if missing:
    raise UserError(f"no budget folder(s) {missing} in {workdir}; it has {folders}")
  dirs = [os.path.join(workdir, f) for f in folders if not only or f in only] or [workdir]
  unfinished = [d for d in dirs if not os.path.exists(os.path.join(d, "results.json"))]
  if finished and unfinished:
    raise UserError(f"{unfinished[0]} has no results.json: finish our run first (the peer is "
                    "compared with it and matched on its cost)")
  return dirs


def read_json(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def export_teacher(workdir: str, cfg) -> tuple[torch.nn.Module, dict]:
  """The run's teacher as its PyTorch zoo module (eval mode), exported once into the workdir."""
  source = cfg.teacher.checkpoint or workdir
  out = os.path.join(workdir, PEER_DIR, "teacher.pth")
  if not os.path.exists(export_torch.description_path(out)):
    export_torch.export_teacher(source, out)
  description = export_torch.load_description(out)
  model = tm.zoo_model(description["model"], description["num_classes"],
                       **description["torch_options"])
  model.load_state_dict(torch.load(out, weights_only=True), strict=True)
  net, _, _ = artifacts.load_model(export_torch.find_teacher(source))
  shape = tuple(description["image_shape"])
  ours, hooks = cost.network_costs(net, shape)["total"]["macs"], tm.count_macs(model, shape)
  if abs(hooks - ours) > CONVENTION_TOLERANCE * ours:
    raise UserError(f"the PyTorch teacher counts {hooks:,} MACs, the project's counter {ours:,}: "
                    "not the same convention, so the budgets would not compare")
  return model.eval(), description


def prune(teacher: torch.nn.Module, variant: str, limit: float, shape, steps: int):
  """A pruned copy of `teacher` with at most `limit` MACs, and what it took."""
  model = copy.deepcopy(teacher).eval()
  h, w, c = shape
  example = torch.zeros(1, c, h, w)
  start = time.perf_counter()
  pruner = tp.pruner.MetaPruner(
      model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
      global_pruning=variant == "global", pruning_ratio=1.0, max_pruning_ratio=0.95,
      iterative_steps=steps, ignored_layers=ignored_layers(model))
  macs = tm.count_macs(model, shape)
  while macs > limit and pruner.current_step < pruner.iterative_steps:
    pruner.step()
    macs = tm.count_macs(model, shape)
  return model, {"macs": macs, "params": sum(p.numel() for p in model.parameters()),
                 "pruner_steps": pruner.current_step, "prune_seconds": time.perf_counter() - start,
                 "reached": macs <= limit}


def ignored_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
  """Layers whose output channels stay: the classifier, and for a ResNet with the parameter-free
  option-A shortcut (zero-padded channels, which DepGraph cannot trace) the residual stream (the
  stem and each block's second conv), so only each block's inner channels are pruned."""
  layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
  if isinstance(model, tm.CifarResNet) and any(isinstance(m, tm.ShortcutA) for m in model.modules()):
    blocks = [m for m in model.modules() if isinstance(m, tm.ZooBasicBlock)]
    layers += [model.conv1, *(b.conv2 for b in blocks)]
  return layers


def our_student(model_dir: str, in_channels: int) -> torch.nn.Module:
  """The PyTorch mirror of a saved student (a budget's export/ or finetune/ folder)."""
  net, variables, _ = artifacts.load_model(model_dir)
  model = tm.BlockNet(net.to_json(), in_channels)
  tm.load_flax_variables(model, variables)
  return model.eval()


def latency(model: torch.nn.Module, shape, runs: int = 200, warmup: int = 20) -> dict:
  h, w, c = shape
  x = torch.randn(1, c, h, w)
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  try:
    times = []
    with torch.no_grad():
      for i in range(warmup + runs):
        start = time.perf_counter()
        model(x)
        if i >= warmup:
          times.append(time.perf_counter() - start)
  finally:
    torch.set_num_threads(threads)
  return {"median_ms": 1e3 * float(np.median(times)), "p90_ms": 1e3 * float(np.percentile(times, 90)),
          "threads": 1, "batch": 1, "runs": runs}


def our_results(dirs: list[str], ours_path: str) -> dict:
  """{budget folder: our finished run's result}: each folder's results.json, or with `ours_path`
  the budget's entry of that sweep summary, whose plan must be the rebuilt folder's."""
  if not ours_path:
    return {d: read_json(os.path.join(d, "results.json")) for d in dirs}
  if not os.path.exists(ours_path):
    raise UserError(f"--ours {ours_path} does not exist; give a finished sweep's results.json")
  budgets = read_json(ours_path).get("budgets", {})
  out = {}
  for d in dirs:
    folder = os.path.basename(d)
    if folder not in budgets:
      raise UserError(f"--ours {ours_path} has no budget {folder}; it has {sorted(budgets)}")
    if not os.path.isdir(os.path.join(d, "refine")):
      raise UserError(f"{d} has no refine/: run our command up to the refine phase first")
    plan, theirs = read_plan(d), budgets[folder]["plan"]
    differ = [b for b in theirs["choice"] if plan["choice"].get(b) != theirs["choice"][b]]
    if differ or plan["limit"] != theirs["limit"]:
      where = f"block {differ[0]}" if differ else "the MAC limit"
      raise UserError(f"{d}'s plan differs from {ours_path}'s at {where}: not the same run (same "
                      "config and seed?)")
    out[d] = budgets[folder]
  return out


def student_dir(budget_dir: str) -> str:
  """Our student's saved model: the export, or the refined student when the workdir was rebuilt up
  to refinement (the same architecture, so the same latency)."""
  export = os.path.join(budget_dir, "export")
  return export if os.path.isdir(export) else os.path.join(budget_dir, "refine")


def matched_steps(res: dict, ours_steps: int) -> dict:
  seconds = res["cost"]["seconds"]
  ratio = res["cost"]["total_seconds"] / seconds["finetune"]
  return {"epochs": ours_steps, "total_cost": int(round(ours_steps * ratio))}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="our finished run (single budget or a sweep)")
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--budgets", default="", help="a sweep's budget folders to run, comma-separated "
                 "(default: all), e.g. budget_macs_0.5,budget_macs_0.25")
  p.add_argument("--iterative_steps", type=int, default=400)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  p.add_argument("--steps", type=int, default=0, help="> 0: train this many steps (smoke runs)")
  p.add_argument("--ours", default="", help="a finished sweep's results.json to take our results "
                 "and cost from, for a workdir rebuilt up to refinement (its plans must match)")
  args = p.parse_args(argv)
  try:
    run(args)
  except UserError as e:
    raise SystemExit(f"error: {e}")


def run(args) -> None:
  variants = [v for v in args.variants.split(",") if v]
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown or not variants:
    raise UserError(f"unknown variant(s) {unknown or variants}; valid: {', '.join(VARIANTS)}")
  if not os.path.exists(os.path.join(args.workdir, "config.json")):
    raise UserError(f"{args.workdir} is not a workdir of ours (no config.json)")
  torch.set_num_threads(args.threads)
  cfg = ml_collections.ConfigDict(read_json(os.path.join(args.workdir, "config.json")))
  dirs = budget_dirs(args.workdir, [b for b in args.budgets.split(",") if b],
                     finished=not args.ours)
  ours = our_results(dirs, args.ours)
  teacher, description = export_teacher(args.workdir, cfg)
  shape = tuple(description["image_shape"])
  limits = {d: read_plan(d)["limit"] for d in dirs}
  pruned = {}
  for d in dirs:  # every budget and variant first: an unreachable one stops before any training
    for v in variants:
      pruned[d, v] = prune(teacher, v, limits[d], shape, args.iterative_steps)
      if not pruned[d, v][1]["reached"]:
        raise UserError(f"Torch-Pruning ({v}) cannot reach {limits[d]:,.0f} MACs for "
                        f"{os.path.basename(d)}: {pruned[d, v][1]['macs']:,} after "
                        f"{args.iterative_steps} steps (only the inner channels of the blocks are "
                        "prunable here); choose a larger budget")
      log(f"{os.path.basename(d)} {v}: {pruned[d, v][1]}")
  if args.ours:  # what summarize_peer.py reads as our run
    source = os.path.relpath(os.path.abspath(args.ours), REPO)
    files.write_json(os.path.join(args.workdir, PEER_DIR, "ours.json"),
                     {**read_json(args.ours), "source": source})
  dataset = data.load_dataset(cfg.data)
  pre = description["preprocess"]
  split = lambda s: finetune.Images(s.images, s.labels, pre["mean"], pre["std"])
  splits = tuple(split(s) for s in (dataset.train, dataset.validation, dataset.test))
  ours_steps = args.steps or train.num_steps(cfg.finetune.train, len(splits[0]))
  # Every budget at equal fine-tune epochs first (its latency table with it), then at equal total
  # cost: the equal-epochs comparison is complete early in a long run.
  chosen = {}
  for match in MATCHES:
    for d in dirs:
      variants_d = variants if match == "epochs" else [chosen[d]]
      results = {v: fine_tune_once(d, v, match, matched_steps(ours[d], ours_steps)[match],
                                   pruned[d, v], teacher, shape, limits[d], cfg, splits)
                 for v in variants_d}
      if match == "epochs":
        chosen[d] = max(results, key=lambda v: results[v]["val_accuracy"])
        write_latency(d, teacher, shape)


def fine_tune_once(d: str, v: str, match: str, steps: int, pruned, teacher, shape, limit: float,
                   cfg, splits) -> dict:
  """One variant of one budget fine-tuned for `steps` (skipped when its result.json exists)."""
  train_data, val_data, test_data = splits
  tcfg, kd = cfg.finetune.train, cfg.finetune.kd
  name = f"{os.path.basename(d)} {v} {match}"
  folder = os.path.join(d, PEER_DIR, f"{v}_{match}")
  path = os.path.join(folder, "result.json")
  if os.path.exists(path):
    result = read_json(path)
  else:
    model, info = copy.deepcopy(pruned[0]), pruned[1]
    log(f"{name}: fine-tune {steps} steps")
    fit = finetune.fit(model, train_data, steps, tcfg.batch_size, tcfg.learning_rate,
                       seed=cfg.seed + 3, weight_decay=tcfg.weight_decay,
                       loss_fn=finetune.kd_loss(teacher, kd.alpha, kd.temperature),
                       crop_padding=cfg.data.crop_padding, flip=cfg.data.flip,
                       log=lambda m: log(f"{name}: {m}"))
    result = {"variant": v, "match": match, **info, **fit,
              "teacher_macs": tm.count_macs(teacher, shape), "limit": limit,
              "val_accuracy": finetune.evaluate(model, val_data),
              "accuracy": finetune.evaluate(model, test_data),
              "latency": latency(model, shape), "learning_rate": tcfg.learning_rate,
              "kd": {"alpha": kd.alpha, "temperature": kd.temperature}}
    os.makedirs(folder, exist_ok=True)
    torch.save(model, os.path.join(folder, "model.pt"))  # the whole module: it is pruned
    files.write_json(path, result)  # last: its presence means the run is complete
  log(f"{name}: val {result['val_accuracy']:.4f} test {result['accuracy']:.4f} "
      f"({result['epochs']:.2f} epochs)")
  return result


def write_latency(d: str, teacher, shape) -> None:
  """Batch-1 latency of the teacher and our student, beside the pruned networks' own."""
  path = os.path.join(d, PEER_DIR, "latency.json")
  if not os.path.exists(path):
    files.write_json(path, {"teacher": latency(teacher, shape),
                            "ours": latency(our_student(student_dir(d), shape[-1]), shape)})


if __name__ == "__main__":
  main()
