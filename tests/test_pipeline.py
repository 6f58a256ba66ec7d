"""End to end: every phase on a small real Fashion-MNIST config; the budget holds, the report and the
export exist, and the exported student (orbax + spec, and jax.export) predicts like the trained one."""
import json
import os

import jax
import numpy as np
import pytest

import compactkd_jax
from compactkd_jax import artifacts, export, pipeline
from compactkd_jax import workdir as workdir_lib
from compactkd_jax.context import RunContext
from conftest import make_tiny_config

ALL_PHASES = ("teacher", "distill", "select", "refine", "finetune", "baselines", "report")
# The list's order is the run order (config_keys.PHASES); a new phase must be added here too.
assert ALL_PHASES == tuple(pipeline.config_lib.PHASES)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, request):
  request.getfixturevalue("fmnist_dir")
  cfg = make_tiny_config(train_limit=3000, validation_size=500, test_limit=500, width=0.25,
                         steps=120, batch_size=64, learning_rate=0.1)
  cfg.phases = ALL_PHASES
  cfg.distill.candidates = ("keep", "slim_0.25", "slim_0.5", "ir_1", "skip")
  for section, steps in (("distill", 30), ("refine", 5), ("finetune", 40), ("baselines", 40)):
    t = cfg[section].train
    t.steps, t.batch_size, t.log_every_steps, t.checkpoint_every_steps = steps, 64, steps, steps
  cfg.select.budget = 0.5
  cfg.report.throughput_batch_size = 64
  cfg.report.runtimes = ("onnxruntime", "litert")
  workdir = str(tmp_path_factory.mktemp("e2e"))
  results = pipeline.run(cfg, workdir)
  return cfg, workdir, results


def test_every_phase_ran_and_wrote_its_files(finished_run):
  _, workdir, results = finished_run
  assert set(results) == set(ALL_PHASES)
  for name in ("distill/scores.json", "select/plan.json", "select/chosen", "results.json",
               "report.md", "tradeoff.png", "export/model.json", "export/student.jax_export",
               "export/variables"):
    assert os.path.exists(os.path.join(workdir, name)), name
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  for row in (res["teacher"], res["student"], *res["baselines"].values()):
    for key in ("accuracy", "flops", "macs", "params"):
      assert np.isfinite(row[key])
  assert set(res["baselines"]) == {"scratch", "kd"}
  assert {"metric", "limit", "teacher_cost"} <= set(res["budget"])
  report = open(os.path.join(workdir, "report.md")).read()
  assert "| student |" in report and "| teacher |" in report


def test_report_deploys_teacher_and_student(finished_run):
  """The deployed fp32 files score what JAX scored on the test split (one flipped near-tie at
  most), and the report shows the runtimes' table."""
  _, workdir, _ = finished_run
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  for name in ("teacher", "student"):
    for runtime in ("onnxruntime", "litert"):
      entries = res["deploy"][name]["runtimes"][runtime]
      assert abs(entries["fp32"]["test_accuracy"] - res[name]["accuracy"]) <= 1 / 500 + 1e-9
      assert entries["int8"]["latency"]["median_ms"] > 0 and entries["fp32"]["throughput"] > 0
  for f in ("model.tflite", "model_int8.tflite", "model.onnx", "model_int8.onnx", "deploy.json"):
    assert os.path.exists(os.path.join(workdir, "export", "deploy", f)), f
    assert os.path.exists(os.path.join(workdir, "deploy_teacher", f)), f
  report = open(os.path.join(workdir, "report.md")).read()
  assert "## Deployed (test split)" in report and "| onnxruntime | int8 |" in report


def test_student_meets_the_budget(finished_run):
  _, workdir, _ = finished_run
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  assert res["budget"]["metric"] == "flops"
  assert res["budget"]["limit"] == pytest.approx(0.5 * res["teacher"]["flops"], rel=1e-6)
  # The plan's cost is summed per block; the assembled student is measured whole: both fit.
  assert res["plan"]["cost"] <= res["budget"]["limit"]
  assert res["student"]["flops"] <= res["budget"]["limit"] * 1.01
  # The student really is different from the teacher and smaller.
  assert any(c != "keep" for c in res["plan"]["choice"].values())
  assert res["student"]["params"] < res["teacher"]["params"]


def test_student_learned_something(finished_run):
  _, workdir, _ = finished_run
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  assert res["teacher"]["accuracy"] > 0.6
  assert res["student"]["accuracy"] > 0.5


def test_exported_student_predicts_like_the_trained_one(finished_run, small_dataset):
  _, workdir, _ = finished_run
  images = small_dataset.test.images[:37]  # odd size: the export has a symbolic batch dimension
  net, variables, spec = artifacts.load_model(os.path.join(workdir, "finetune"))
  pre = artifacts.preprocess_of(spec)
  reference = np.asarray(net.apply(variables, pre(images))[0])

  student = compactkd_jax.load_student(os.path.join(workdir, "export"))
  np.testing.assert_allclose(np.asarray(student.predict(images)), reference, atol=1e-5, rtol=1e-5)
  exported = export.load_exported(os.path.join(workdir, "export"))
  np.testing.assert_allclose(np.asarray(exported.call(images)), reference, atol=1e-5, rtol=1e-5)
  with open(os.path.join(workdir, "export", "model.json")) as f:
    assert json.load(f)["architecture"] == net.to_json()


def test_rerun_skips_finished_phases(finished_run):
  cfg, workdir, _ = finished_run
  before = {p: os.path.getmtime(os.path.join(workdir, p, "result.json")) for p in ALL_PHASES}
  pipeline.run(cfg, workdir)
  after = {p: os.path.getmtime(os.path.join(workdir, p, "result.json")) for p in ALL_PHASES}
  assert before == after


def test_a_different_config_is_refused(finished_run):
  from compactkd_jax.errors import UserError
  cfg, workdir, _ = finished_run
  other = cfg.copy_and_resolve_references()
  other.select.budget = 0.3
  with pytest.raises(UserError, match="different config"):
    pipeline.run(other, workdir)


def test_select_saved_exactly_the_chosen_candidates(finished_run):
  """Assembly restores select/chosen/, which holds the plan's candidates as they were distilled
  (compared with distill/candidates/, every candidate) and nothing else."""
  cfg, workdir, _ = finished_run
  ctx = RunContext(cfg, workdir, None, None, None, {})
  plan = workdir_lib.load_plan(ctx)
  chosen, every = workdir_lib.load_chosen(ctx, plan), workdir_lib.load_candidates(ctx)
  trained = {e["block"]: e["candidate"] for e in plan["blocks"]
             if e["candidate"] in every["params"].get(e["block"], {})}
  assert trained, plan["choice"]  # the budget replaces blocks by trained candidates
  assert {b: set(m) for b, m in chosen["params"].items()} == {b: {c} for b, c in trained.items()}
  for col in ("params", "batch_stats"):
    for b, c in trained.items():
      got, want = chosen[col].get(b, {}).get(c, {}), every[col][b][c]
      assert jax.tree.structure(got) == jax.tree.structure(want)
      for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_rerank_takes_the_plan_whose_assembled_student_scores_best(finished_run):
  """select.rerank=3 on the finished run's distillation: three different plans within the budget,
  the first the DP's own, then in order of predicted damage; each one's validation accuracy,
  recomputed here from the assembled student's logits over the whole split in one batch, is the
  one recorded, and the plan taken is the best (a tie to the earlier)."""
  from compactkd_jax.phases import select as select_phase
  cfg, workdir, _ = finished_run
  cfg = cfg.copy_and_resolve_references()
  cfg.select.rerank = 3
  ctx = pipeline.make_context(cfg, workdir)
  scores = workdir_lib.load_scores(ctx)
  first = select_phase.checked_plan(ctx, scores, cfg.select.budget)
  out = select_phase.reranked(ctx, scores, first)
  table = out["table"]
  assert len(table) == 3 and table[0]["choice"] == first["choice"]
  assert len({tuple(sorted(r["choice"].items())) for r in table}) == 3
  assert table[1]["predicted_damage"] <= table[2]["predicted_damage"] + 1e-12
  assert table[0]["predicted_damage"] <= table[1]["predicted_damage"] + 1e-9
  teacher_net, teacher_vars = workdir_lib.load_teacher(ctx)
  val = ctx.dataset.validation
  accuracies = []
  for row in table:
    plan = select_phase.alternatives(scores, cfg.select, cfg.select.budget, first)[row["rank"]]
    assert plan["choice"] == row["choice"] and plan["cost"] <= first["limit"] * (1 + 1e-12)
    net, variables = workdir_lib.assemble(teacher_net, teacher_vars, plan,
                                          workdir_lib.load_candidates(ctx))
    logits, _ = net.apply(variables, ctx.preprocess(val.images))
    accuracies.append(float(np.mean(np.argmax(np.asarray(logits), -1) == val.labels)))
    assert row["val_accuracy"] == pytest.approx(accuracies[-1], abs=1e-6)
  best = int(np.argmax(accuracies))  # the first of the best
  assert [bool(r.get("chosen")) for r in table] == [i == best for i in range(3)]
  assert out["plan"]["choice"] == table[best]["choice"]
  assert out["images"] == 3 * len(val.labels)
