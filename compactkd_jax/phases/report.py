"""The report phase (design stage 8): test accuracy, FLOPs, MACs, params, measured latency and
training cost of teacher, student and baselines; `results.json`, `report.md`, `tradeoff.png` (the
measured trade-off), `damage_curve.png` (the predicted one); the exported student."""
import os

import jax

from compactkd_jax import config as config_lib
from compactkd_jax import cost, equal_cost, export, files, plots, supervised, sweep, workdir
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


def collect(ctx: RunContext) -> dict:
  finetuned = workdir.read_result(ctx, "finetune")
  if workdir.read_result(ctx, "select") is None or finetuned is None:
    raise UserError("the report needs the select and finetune phases; add them to config.phases")
  plan = workdir.load_plan(ctx)
  t_net, t_vars = workdir.load_teacher(ctx)
  rows = {"teacher": _row(ctx, "teacher", t_net, t_vars,
                          workdir.read_result(ctx, "teacher"))}
  s_net, s_vars = workdir.load_model(ctx, workdir.FINETUNED)
  rows["student"] = _row(ctx, "student", s_net, s_vars, finetuned)
  ours = equal_cost.ours(ctx)
  rows["student"].update(train_seconds=ours["total_seconds"],
                         train_images=sum(ours["images"].values()))
  baselines = {}
  matched = ctx.read_json(*workdir.MATCHED_STEPS) or {}
  for kind in ctx.cfg.baselines.kinds:
    res = ctx.read_json(workdir.baseline_dir(kind), workdir.RESULT)
    if res is not None:
      net, variables = workdir.load_model(ctx, workdir.baseline_dir(kind))
      baselines[kind] = {**_row(ctx, workdir.baseline_dir(kind), net, variables, res),
                         "train_seconds": res["train_seconds"],
                         "train_images": res.get("images", 0), "epochs": res.get("epochs"),
                         "match": res.get("match", "epochs"),
                         "matched": matched.get(kind)}
  walls = {p: (workdir.read_result(ctx, p) or {}).get("wall_seconds")
           for p in ctx.cfg.phases if p != "report"}
  exported = export.export(ctx.path(workdir.EXPORT), s_net, s_vars, ctx.dataset.image_shape,
                           ctx.dataset.num_classes, ctx.preprocess,
                           extra={"plan": plan["choice"], "teacher": ctx.cfg.teacher.model})
  # Relative to the workdir: results travel (results/ in the repository) without naming a machine.
  exported = {k: os.path.relpath(v, ctx.workdir) for k, v in exported.items()}
  t = rows["teacher"]
  deployed = _deploy(ctx, {"teacher": (t_net, t_vars), "student": (s_net, s_vars)})
  return {"teacher": t, "student": rows["student"], "baselines": baselines,
          "budget": {"metric": plan["metric"], "limit": plan["limit"],
                     "teacher_cost": plan["teacher_cost"], "relative": plan["relative_budget"]},
          "compression": {m: t[m] / max(rows["student"][m], 1) for m in ("flops", "macs", "params")},
          "cost": ours, "plan": plan, "wall_seconds": walls, "export": exported,
          "deploy": deployed,
          "precision": {name: ctx.cfg[name].train.precision
                        for name in ("teacher", "distill", "refine", "finetune", "baselines")},
          "device": f"{jax.devices()[0].platform} x{len(jax.devices())}"}


def _deploy(ctx: RunContext, nets: dict) -> dict | None:
  """Teacher and student on the configured runtimes (files in deploy_teacher/ and export/deploy/):
  checks, batch-1 latency, throughput and test accuracy, fp32 and int8; None when none is set."""
  r = ctx.cfg.report
  # A latency-budget plan is checked on its runtime whether or not the report lists it.
  wanted = tuple(dict.fromkeys((*r.runtimes, *((ctx.cfg.select.runtime,) if
                                               config_lib.needs_latency(ctx.cfg.select) else ()))))
  if not wanted or not files.is_primary():
    return None
  from compactkd_jax.deploy import evaluate, formats
  out = {}
  for name, (net, variables) in nets.items():
    folder = (ctx.path(workdir.EXPORT, "deploy") if name == "student"
              else ctx.path(workdir.DEPLOY_TEACHER))
    out[name] = evaluate.deploy(folder, formats.predict_fn(net, variables, ctx.preprocess),
                                ctx.dataset.image_shape, ctx.dataset.validation, wanted,
                                r.threads, test=ctx.dataset.test,
                                throughput_batch=r.throughput_batch_size)
  return out


def deploy_table(results: dict) -> str:
  """Per runtime and precision: teacher and student latency, the speed-up beside the MAC
  reduction, throughput and test accuracy."""
  d, macs = results["deploy"], results["compression"]["macs"]
  rows = []
  for runtime, entries in d["student"]["runtimes"].items():
    for precision, s in entries.items():
      t = d["teacher"]["runtimes"][runtime][precision]
      ms = lambda e: f"{e['latency']['median_ms']:.3f} / {e['latency']['p90_ms']:.3f}"
      speedup = t["latency"]["median_ms"] / s["latency"]["median_ms"]
      rows.append({"runtime": runtime, "precision": precision, "teacher ms (median / p90)": ms(t),
                   "student ms (median / p90)": ms(s), "speed-up": f"{speedup:.2f}x",
                   "MAC reduction": f"{macs:.2f}x", "speed-up / MAC reduction":
                   f"{speedup / macs:.2f}",
                   "teacher img/s": f"{t['throughput']:,.0f}", "student img/s":
                   f"{s['throughput']:,.0f}", "teacher acc": f"{100 * t['test_accuracy']:.2f}%",
                   "student acc": f"{100 * s['test_accuracy']:.2f}%"})
  return cost.format_table(rows, list(rows[0]))


def latency_lines(results: dict) -> list[str]:
  """A latency-budget plan: the lookup table's prediction beside the measured latency."""
  plan = results["plan"]
  if "runtime" not in plan or not results.get("deploy"):
    return []
  limits = plan.get("constraints") or {plan["metric"]: {
      "limit": plan["limit"], "cost": plan["cost"], "teacher_cost": plan["teacher_cost"]}}
  lat = {**limits["latency"]}
  check = plan.get("latency_check")
  if check:  # the user's limit (the plan may have been solved under a tightened one)
    lat["limit"] = check["limit_ms"]
  measured = {n: results["deploy"][n]["runtimes"][plan["runtime"]]["fp32"]["latency"]["median_ms"]
              for n in ("teacher", "student")}
  err = lambda predicted, got: f"{100 * (got - predicted) / predicted:+.1f}%"
  return [f"Latency budget on {plan['runtime']} (fp32, batch 1): limit {lat['limit']:.4f} ms; "
          f"the table predicts the student at {lat['cost']:.4f} ms, measured "
          f"{measured['student']:.4f} ms ({err(lat['cost'], measured['student'])}); the teacher "
          f"at {lat['teacher_cost']:.4f} ms, measured {measured['teacher']:.4f} ms "
          f"({err(lat['teacher_cost'], measured['teacher'])}). "
          + (f"At selection the assembled student was measured {len(check['attempts'])} time(s) "
             f"(last {check['measured_ms']:.4f} ms, accepted under the limit less "
             f"{100 * check.get('margin', 0):.0f}%); the table's limit was tightened to "
             f"{check['attempts'][-1]['scale']:.3f}x. " if check else "")
          + "The student "
          f"{'meets' if measured['student'] <= lat['limit'] else 'does NOT meet'} the limit as "
          "measured.", ""]


def deploy_lines(results: dict) -> list[str]:
  d = results["deploy"]
  s = d["student"]
  notes = [f"{rt} int8 loses {e['int8']['drop_points']:.2f} points of validation accuracy "
           f"({name})" for name in ("teacher", "student")
           for rt, e in d[name]["runtimes"].items() if not e["int8"]["within_tolerance"]]
  return ["## Deployed (test split)", "", deploy_table(results), "", *latency_lines(results),
          f"Batch-1 latency: median and p90 of repeated runs after warm-up, {s['threads']} "
          f"thread(s); throughput at batch {s.get('throughput_batch', '-')}. Files: LiteRT via "
          f"jax2tf and the LiteRT converter, ONNX (opset {s['onnx_opset']}) via tf2onnx from it; "
          "int8: full-integer post-training quantization calibrated on 256 validation images "
          "(LiteRT), ONNX Runtime static QDQ (per-channel). Every fp32 file gave the JAX logits "
          "within 1e-4 x max(1, largest logit) on validation images; int8 within 1 point of "
          "fp32 on validation: "
          f"{'; '.join(notes) if notes else 'yes, every file'}. Versions: "
          f"{', '.join(f'{k} {v}' for k, v in s['versions'].items() if v)}.", ""]


def summary_table(results: dict) -> str:
  rows = [results["teacher"], results["student"], *results["baselines"].values()]
  cols = ["name", "accuracy", "val acc", "flops", "macs", "params", "latency_ms", "throughput",
          "train wall", "train images"]
  fmt_acc = lambda a: "-" if a is None else f"{100 * a:.2f}%"
  rows = [{**r, "accuracy": fmt_acc(r["accuracy"]), "val acc": fmt_acc(r.get("val_accuracy")),
           "latency_ms": f"{r['latency_ms']:.2f}", "throughput": f"{r['throughput']:,.0f}/s",
           "train wall": f"{r['train_seconds']:.0f} s" if "train_seconds" in r else "(given)",
           "train images": f"{r['train_images']:,}" if "train_images" in r else "-"}
          for r in rows]
  return cost.format_table(rows, cols)


def cost_lines(results: dict) -> list[str]:
  """What ours cost, phase by phase, and how the baselines were matched to it."""
  c = results["cost"]
  parts = ", ".join(f"{k} {v:.0f} s ({c['images'][k]:,} images)" for k, v in c["seconds"].items())
  lines = [f"Our student cost {c['total_seconds']:.0f} s of training wall time: {parts}. "
           "The teacher's training is not counted (every method starts from it).",
           f"Overhead of the method (distill + score + refine) against the fine-tune, one training "
           f"of the student: {c['overhead_seconds']:.0f} s / {c['seconds']['finetune']:.0f} s = "
           f"**{c['overhead_ratio']:.3f}** (target <= 0.25)."]
  for kind, r in results["baselines"].items():
    how = ("matched to our total cost" if r["match"] == "total_cost"
           else "the configured epochs")
    m = r.get("matched") or {}
    if r["match"] == "total_cost" and "ours_finetune_seconds_per_step" in m:
      price = m["seconds_per_step"] / m["ours_finetune_seconds_per_step"]
      how += (f": ours cost {m['ours_finetune_step_equivalents']:,.0f} of its fine-tune steps, "
              f"and this baseline's step costs {price:.2f} of one, timed side by side")
    lines.append(f"Baseline {kind}: {r['epochs']:.2f} epochs ({how}), {r['train_seconds']:.0f} s "
                 f"= {r['train_seconds'] / max(c['total_seconds'], 1e-9):.2f}x ours.")
  return lines


def block_table(plan: dict) -> str:
  m = plan["metric"]
  rows = [{"block": e["block"], f"teacher {m}": _amount(m, e["teacher_cost"]),
           "candidate": e["candidate"], m: _amount(m, e["cost"]), "nmse": f"{e['nmse']:.4f}",
           "hybrid acc": f"{100 * e['hybrid_accuracy']:.2f}%"}
          for e in plan["blocks"]]
  return cost.format_table(rows, list(rows[0]))


def _amount(metric: str, value: float) -> str:
  return f"{value:.4f} ms" if metric == "latency" else f"{value:,.0f}"


def constraint_lines(plan: dict) -> list[str]:
  """The limits the plan met together (select.constraints), each with the plan's cost."""
  if "constraints" not in plan:
    return []
  parts = [f"{m} {_amount(m, c['cost'])} <= {_amount(m, c['limit'])} "
           f"({100 * c['cost'] / c['teacher_cost']:.1f}% of the teacher)"
           for m, c in plan["constraints"].items()]
  return [f"Every limit met at once (exact MILP): {'; '.join(parts)}.", ""]


def rerank_lines(plan: dict) -> list[str]:
  """The plans compared by select.rerank: each one's predicted damage, cost and the validation
  accuracy of its assembled (unrefined) student, the chosen one marked."""
  if "rerank" not in plan:
    return []
  m = plan["metric"]
  rows = [{"plan": f"{r['rank'] + 1}{' (chosen)' if r.get('chosen') else ''}",
           "predicted damage": f"{r['predicted_damage']:.4f}", m: _amount(m, r["cost"]),
           "val acc before refinement": f"{100 * r['val_accuracy']:.2f}%"}
          for r in plan["rerank"]]
  return [f"Re-ranked (select.rerank={len(rows)}): the least-damage plans, each assembled from "
          "its distilled candidates and scored on the validation split.", "",
          cost.format_table(rows, list(rows[0])), ""]


def write_markdown(results: dict, path: str) -> None:
  b, c = results["budget"], results["compression"]
  walls = ", ".join(f"{k} {v:.0f}s" for k, v in results["wall_seconds"].items() if v is not None)
  text = [
      "# compactkd_jax report", "",
      f"Budget: {b['metric']} <= {_amount(b['metric'], b['limit'])} ({100 * b['relative']:.1f}% of "
      f"the teacher's {_amount(b['metric'], b['teacher_cost'])}). Device: {results['device']}.", "",
      *constraint_lines(results["plan"]),
      "## Summary (test split; every choice was made on the validation split)", "",
      summary_table(results), "",
      f"Compression: {c['flops']:.2f}x FLOPs, {c['macs']:.2f}x MACs, {c['params']:.2f}x params. "
      "Latency at batch 1, throughput at the report batch size, median of repeated runs.", "",
      "## Training cost", "", *[f"- {line}" for line in cost_lines(results)], "",
      f"Wall time per phase: {walls}.", "",
      "Precision (compute dtype of the training passes; parameters and losses are float32): "
      + ", ".join(f"{k} {v}" for k, v in results.get("precision", {}).items()) + ".", "",
      "## Per block (validation split)", "", block_table(results["plan"]), "",
      *rerank_lines(results["plan"]),
      f"Exported student: {results['export']['spec']}, {results['export']['jax_export']}.", "",
      *(deploy_lines(results) if results.get("deploy") else [])]
  files.write_text(path, "\n".join(text))


def run(ctx: RunContext) -> dict:
  results = collect(ctx)
  ctx.write_json(results, workdir.RESULTS)
  write_markdown(results, ctx.path("report.md"))
  # One budget is a sweep of one: the same points as the sweep's summary plot.
  points, teacher_point = sweep.tradeoff_points([{"budgets": {"this": results},
                                                  "teacher": results["teacher"]}])
  plots.measured_tradeoff(points, teacher_point, ctx.path("tradeoff.png"))
  plots.damage_curve(results["plan"]["curve"], results["plan"]["damage"], results["plan"]["metric"],
                     ctx.path("damage_curve.png"))
  if files.is_primary():
    print(summary_table(results))
  return {"student_accuracy": results["student"]["accuracy"],
          "overhead_ratio": results["cost"]["overhead_ratio"],
          "teacher_accuracy": results["teacher"]["accuracy"],
          "flops_ratio": results["student"]["flops"] / results["teacher"]["flops"]}
