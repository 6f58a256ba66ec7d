"""The report phase (DESIGN stage 8): test accuracy, FLOPs, MACs, params and measured latency of
teacher, student and baselines; `results.json`, `report.md`, `tradeoff.png`; the exported student."""
import io

import jax

from compactkd_jax import artifacts, cost, export, feed, files, supervised, teacher
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError


def _measure(ctx: RunContext, net, variables) -> dict:
  r = ctx.cfg.report
  shape = ctx.dataset.image_shape
  apply = lambda v, x: net.apply(v, x)[0]
  return {**cost.module_costs(net, shape),
          "latency_ms": 1e3 * cost.measure_latency(apply, variables, shape,
                                                   r.latency_batch_size)["seconds"],
          "throughput": cost.measure_latency(apply, variables, shape,
                                             r.throughput_batch_size)["images_per_second"]}


def _row(ctx, name, net, variables, phase_result) -> dict:
  acc = supervised.evaluate(net, variables, ctx.splits["test"], ctx.preprocess, ctx.mesh,
                            ctx.cfg.data.eval_batch_size)["accuracy"]
  return {"name": name, "accuracy": acc, "val_accuracy": (phase_result or {}).get("val_accuracy"),
          **_measure(ctx, net, variables)}


def _load(ctx, name):
  net, variables, _ = artifacts.load_model(ctx.path(name))
  return net, feed.replicate(variables, ctx.mesh)


def collect(ctx: RunContext) -> dict:
  plan = ctx.read_json("plan.json")
  if plan is None or ctx.read_json("finetune", "result.json") is None:
    raise UserError("the report needs the select and finetune phases; add them to config.phases")
  t_net, t_vars = teacher.load(ctx)
  rows = {"teacher": _row(ctx, "teacher", t_net, t_vars, ctx.read_json("teacher", "result.json"))}
  s_net, s_vars = _load(ctx, "finetune")
  rows["student"] = _row(ctx, "student", s_net, s_vars, ctx.read_json("finetune", "result.json"))
  baselines = {}
  for kind in ctx.cfg.baselines.kinds:
    res = ctx.read_json(f"baseline_{kind}", "result.json")
    if res is not None:
      net, variables = _load(ctx, f"baseline_{kind}")
      baselines[kind] = _row(ctx, f"baseline_{kind}", net, variables, res)
  walls = {p: (ctx.read_json(p, "result.json") or {}).get("wall_seconds")
           for p in ctx.cfg.phases if p != "report"}
  exported = export.export(ctx.path("export"), s_net, s_vars, ctx.dataset.image_shape,
                           ctx.dataset.num_classes, ctx.preprocess,
                           extra={"plan": plan["choice"], "teacher": ctx.cfg.teacher.model})
  t = rows["teacher"]
  return {"teacher": t, "student": rows["student"], "baselines": baselines,
          "budget": {"metric": plan["metric"], "limit": plan["limit"],
                     "teacher_cost": plan["teacher_cost"], "relative": plan["relative_budget"]},
          "compression": {m: t[m] / max(rows["student"][m], 1) for m in ("flops", "macs", "params")},
          "plan": plan, "wall_seconds": walls, "export": exported,
          "device": f"{jax.devices()[0].platform} x{len(jax.devices())}"}


def summary_table(results: dict) -> str:
  rows = [results["teacher"], results["student"], *results["baselines"].values()]
  cols = ["name", "accuracy", "flops", "macs", "params", "latency_ms", "throughput"]
  rows = [{**r, "accuracy": f"{100 * r['accuracy']:.2f}%", "latency_ms": f"{r['latency_ms']:.2f}",
           "throughput": f"{r['throughput']:,.0f}/s"} for r in rows]
  return cost.format_table(rows, cols)


def block_table(plan: dict) -> str:
  m = plan["metric"]
  rows = [{"block": e["block"], f"teacher {m}": e["teacher_cost"], "candidate": e["candidate"],
           m: e["cost"], "nmse": f"{e['nmse']:.4f}", "hybrid acc": f"{100 * e['hybrid_accuracy']:.2f}%"}
          for e in plan["blocks"]]
  return cost.format_table(rows, list(rows[0]))


def write_markdown(results: dict, path: str) -> None:
  b, c = results["budget"], results["compression"]
  walls = ", ".join(f"{k} {v:.0f}s" for k, v in results["wall_seconds"].items() if v is not None)
  text = [
      "# compactkd_jax report", "",
      f"Budget: {b['metric']} <= {b['limit']:,.0f} ({100 * b['relative']:.1f}% of the teacher's "
      f"{b['teacher_cost']:,.0f}). Device: {results['device']}.", "",
      "## Summary (test split)", "", summary_table(results), "",
      f"Compression: {c['flops']:.2f}x FLOPs, {c['macs']:.2f}x MACs, {c['params']:.2f}x params. "
      "Latency at batch 1, throughput at the report batch size, median of repeated runs.", "",
      f"Wall time per phase: {walls}.", "",
      "## Per block (validation split)", "", block_table(results["plan"]), "",
      f"Exported student: {results['export']['spec']}, {results['export']['jax_export']}.", ""]
  files.write_text(path, "\n".join(text))


def plot_tradeoff(results: dict, path: str) -> None:
  """Accuracy against FLOPs for teacher, student and baselines; on a second axis, the predicted
  damage of the best plan at every budget from 10% to 100% (selection is cheap: the whole curve)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  t = results["teacher"]
  fig, ax = plt.subplots(figsize=(6.8, 4.4))
  points = [("teacher", t, "k*"), ("student (ours)", results["student"], "ro")]
  points += [(f"baseline: {k}", r, m) for (k, r), m in zip(results["baselines"].items(),
                                                          ("bs", "g^"))]
  for label, r, marker in points:
    ax.plot(r["flops"], 100 * r["accuracy"], marker, markersize=9, label=f"{label}, test")
  ax.set_xlabel("XLA FLOPs per image")
  ax.set_ylabel("test accuracy (%)")
  ax.grid(alpha=0.3)
  curve = [p for p in results["plan"]["curve"] if p["predicted_damage"] is not None]
  if curve:
    # Budget fractions are of the plan's metric; drawn at that fraction of the teacher's FLOPs.
    # Damage is summed hybrid-accuracy drops (drawn in points) or summed normalized MSEs.
    accuracy = results["plan"]["damage"] == "accuracy"
    ax2 = ax.twinx()
    ax2.plot([p["fraction"] * t["flops"] for p in curve],
             [(100 if accuracy else 1) * p["predicted_damage"] for p in curve], "-", color="0.6",
             label=f"best plan: predicted damage ({results['plan']['damage']}, validation)")
    unit = "accuracy points" if accuracy else "summed nMSE"
    ax2.set_ylabel(f"predicted damage of the best plan\n({unit}; budget on "
                   f"{results['budget']['metric']})", color="0.4")
    ax2.legend(fontsize=8, loc="upper center")
  ax.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=120)
  plt.close(fig)
  files.write_bytes(path, png.getvalue())


def run(ctx: RunContext) -> dict:
  results = collect(ctx)
  ctx.write_json(results, "results.json")
  write_markdown(results, ctx.path("report.md"))
  plot_tradeoff(results, ctx.path("tradeoff.png"))
  if files.is_primary():
    print(summary_table(results))
  return {"student_accuracy": results["student"]["accuracy"],
          "teacher_accuracy": results["teacher"]["accuracy"],
          "flops_ratio": results["student"]["flops"] / results["teacher"]["flops"]}
