"""A budget sweep on a small real Fashion-MNIST config: the teacher and the distillation run once,
every budget gets its own student, baselines and report, the summary and the measured trade-off plot
cover every budget, a rerun resumes only what is missing, and bad budget lists are one-line errors.
Also the equal-total-cost accounting of the baselines."""
import json
import os
import shutil
import time

import numpy as np
import pytest

from compactkd_jax import config as config_lib
from compactkd_jax import equal_cost, knapsack, pipeline, sweep
from compactkd_jax.phases import select as select_phase
from compactkd_jax.errors import UserError
from conftest import make_tiny_config

BUDGETS = (0.75, 0.5)
PHASES = ("teacher", "distill", "select", "refine", "finetune", "baselines", "report")
PER_BUDGET = ("select", "refine", "finetune", "baselines", "report")


def _sweep_config():
  cfg = make_tiny_config(train_limit=2000, validation_size=300, test_limit=300, width=0.25,
                         steps=60, batch_size=32, learning_rate=0.1)
  cfg.phases = PHASES
  cfg.data.eval_batch_size = 100
  cfg.distill.candidates = ("keep", "slim_0.25", "slim_0.5", "skip")
  cfg.distill.score_examples = 300
  for section, steps in (("distill", 30), ("refine", 4), ("finetune", 20), ("baselines", 20)):
    t = cfg[section].train
    t.steps, t.batch_size, t.log_every_steps, t.checkpoint_every_steps = steps, 32, steps, steps
  cfg.select.budgets = BUDGETS
  cfg.report.throughput_batch_size = 32
  return cfg


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, request):
  request.getfixturevalue("fmnist_dir")
  cfg = _sweep_config()
  workdir = str(tmp_path_factory.mktemp("sweep"))
  results = pipeline.run(cfg, workdir)
  return cfg, workdir, results


def _load(*parts):
  with open(os.path.join(*parts)) as f:
    return json.load(f)


def test_every_budget_has_its_own_student_within_its_budget(finished_sweep):
  _, workdir, _ = finished_sweep
  teacher_flops = None
  students = []
  for budget in BUDGETS:
    folder = os.path.join(workdir, sweep.folder_name("flops", budget))
    for phase in PER_BUDGET:
      assert os.path.exists(os.path.join(folder, phase, "result.json")), (folder, phase)
    res = _load(folder, "results.json")
    teacher_flops = teacher_flops or res["teacher"]["flops"]
    assert res["budget"]["limit"] == pytest.approx(budget * teacher_flops, rel=1e-6)
    assert res["student"]["flops"] <= res["budget"]["limit"] * 1.01
    assert set(res["baselines"]) == {"scratch", "kd"}
    for name in ("report.md", "tradeoff.png", "damage_curve.png", "export/student.jax_export"):
      assert os.path.exists(os.path.join(folder, name)), name
    students.append(res["student"]["flops"])
  assert students[1] < students[0]  # a tighter budget, a smaller student
  # Shared phases ran once, at the top; no per-budget phase ran at the top.
  for phase in ("teacher", "distill"):
    assert os.path.exists(os.path.join(workdir, phase, "result.json"))
  assert not os.path.exists(os.path.join(workdir, "select"))


def test_summary_report_and_measured_plot_cover_every_budget(finished_sweep):
  _, workdir, _ = finished_sweep
  summary = _load(workdir, "results.json")
  assert [row["folder"] for row in summary["sweep"]] == [sweep.folder_name("flops", b)
                                                         for b in BUDGETS]
  for row in summary["sweep"]:
    per_budget = _load(workdir, row["folder"], "results.json")
    assert row["ours"] == per_budget["student"]["accuracy"]
    assert row["scratch"] == per_budget["baselines"]["scratch"]["accuracy"]
    assert row["macs"] == per_budget["student"]["macs"]
  report = open(os.path.join(workdir, "report.md")).read()
  assert "flops 75%" in report and "flops 50%" in report
  with open(os.path.join(workdir, "tradeoff.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  # The plot's points: 3 methods x 2 budgets, one accuracy each (one seed).
  points, teacher = sweep.tradeoff_points([summary])
  assert len(points) == 6 and all(len(p["accuracies"]) == 1 for p in points)
  assert teacher["accuracies"] == [summary["teacher"]["accuracy"]]


def test_cost_of_every_row_is_recorded(finished_sweep):
  _, workdir, _ = finished_sweep
  res = _load(workdir, sweep.folder_name("flops", 0.5), "results.json")
  distill = _load(workdir, "distill", "result.json")
  finetune = _load(workdir, sweep.folder_name("flops", 0.5), "finetune", "result.json")
  cost = res["cost"]
  # Images: 30 distill steps of 32, 300 validation images scored in each of the 9 blocks.
  assert cost["images"]["distill"] == 30 * 32 == distill["train_images"]
  assert cost["images"]["score"] == 300 * 9
  assert cost["images"]["finetune"] == 20 * 32
  assert cost["seconds"]["finetune"] == finetune["train_seconds"]
  assert cost["total_seconds"] == pytest.approx(sum(cost["seconds"].values()))
  assert res["student"]["train_seconds"] == cost["total_seconds"]
  for r in res["baselines"].values():
    assert r["match"] == "epochs" and r["train_images"] == 20 * 32 and r["train_seconds"] > 0


def test_seeds_summarize_into_one_table_and_plot(finished_sweep, tmp_path):
  from conftest import run_python
  _, workdir, _ = finished_sweep
  out = str(tmp_path / "tradeoff")
  proc = run_python(["scripts/summarize_tradeoff.py", "--out", out, "--command", "cmd",
                     "--note", "How the rows were made.", workdir, workdir])
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = json.load(open(out + ".json"))["rows"]
  assert [r["budget"] for r in table] == ["flops 75%", "flops 50%"]
  per_budget = _load(workdir, sweep.folder_name("flops", 0.5), "results.json")
  ours = per_budget["student"]["accuracy"]
  assert table[1]["ours"] == [ours, ours]  # one entry per workdir (seed)
  best = max(r["accuracy"] for r in per_budget["baselines"].values())
  assert table[1]["gap_to_best_baseline"][0] == pytest.approx(ours - best)
  text = open(out + ".md").read()
  assert os.path.getsize(out + ".png") > 1000 and "| flops 50% |" in text
  assert "\nHow the rows were made.\n" in text  # the --note paragraph, under the command


def test_sweeps_still_running_summarize_their_finished_budgets(finished_sweep, tmp_path):
  """--finished: the budgets every seed has finished, read from the budgets' own results; the rest
  named; without the flag, or with no budget finished everywhere, one line."""
  from conftest import run_python
  _, workdir, _ = finished_sweep
  first, second = (sweep.folder_name("flops", b) for b in BUDGETS)
  done, running = tmp_path / "done", tmp_path / "running"
  for d, folders in ((done, (first, second)), (running, (first,))):  # running: no sweep summary
    d.mkdir()
    shutil.copy(os.path.join(workdir, "config.json"), d / "config.json")
    for f in folders:
      (d / f).mkdir()
      shutil.copy(os.path.join(workdir, f, "results.json"), d / f / "results.json")
  out = str(tmp_path / "partial")
  proc = run_python(["scripts/summarize_tradeoff.py", "--finished", "--out", out, str(done),
                     str(running)])
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.load(open(out + ".json"))
  assert [r["budget"] for r in summary["rows"]] == ["flops 75%"]
  assert summary["unfinished"] == [second]
  ours = _load(workdir, first, "results.json")["student"]["accuracy"]
  assert summary["rows"][0]["ours"] == [ours, ours]
  assert f"Partial: {second} not yet finished" in open(out + ".md").read()
  (tmp_path / "foreign").mkdir()  # a single-budget run's workdir
  json.dump({"seed": 0, "select": {"budgets": []}}, open(tmp_path / "foreign" / "config.json", "w"))
  for args, says in (([str(running)], "--finished summarizes"),
                     (["--finished", str(tmp_path)], "not a workdir"),
                     (["--finished", str(tmp_path / "foreign")], "no budget sweep")):
    proc = run_python(["scripts/summarize_tradeoff.py", "--out", out, *args])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert says in proc.stderr.strip().splitlines()[-1]
  shutil.rmtree(running / first)
  proc = run_python(["scripts/summarize_tradeoff.py", "--finished", "--out", out, str(done),
                     str(running)])
  assert proc.returncode == 1 and "no budget of the sweep" in proc.stderr


def test_budgets_from_different_runs_combine_into_one_curve(finished_sweep, tmp_path):
  """combine_tradeoff.py: one seed's budgets given as separate budget files (in any order) and
  another's as the sweep's summary make the same table as summarize_tradeoff.py on the workdirs;
  a budget given twice, seeds with different budgets, a foreign file: one line each."""
  from conftest import run_python
  _, workdir, _ = finished_sweep
  first, second = (os.path.join(workdir, sweep.folder_name("flops", b), "results.json")
                   for b in BUDGETS)
  whole = os.path.join(workdir, "results.json")
  combined, reference = str(tmp_path / "combined"), str(tmp_path / "reference")
  proc = run_python(["scripts/combine_tradeoff.py", "--out", combined, "--command", "cmd",
                     "--seed", "0", second, first, "--seed", "1", whole])
  assert proc.returncode == 0, proc.stderr[-2000:]
  proc = run_python(["scripts/summarize_tradeoff.py", "--out", reference, "--command", "cmd",
                     workdir, workdir])
  assert proc.returncode == 0, proc.stderr[-2000:]
  got, want = json.load(open(combined + ".json")), json.load(open(reference + ".json"))
  assert got["rows"] == want["rows"] and got["seeds"] == [0, 1]
  assert got["sources"] == {"0": [second, first], "1": [whole]}
  assert os.path.getsize(combined + ".png") > 1000
  # A budget of another metric joins the table after the flops budgets (rows by metric, then size).
  other = _load(first)
  other["budget"] = dict(other["budget"], metric="params", relative=0.9)
  json.dump(other, open(tmp_path / "params.json", "w"))
  proc = run_python(["scripts/combine_tradeoff.py", "--out", combined, "--seed", "0",
                     str(tmp_path / "params.json"), second, first])
  assert proc.returncode == 0, proc.stderr[-2000:]
  budgets = [row["budget"] for row in json.load(open(combined + ".json"))["rows"]]
  assert budgets == [row["budget"] for row in want["rows"]] + ["params 90%"], budgets
  bare = _load(first)
  bare["baselines"] = {}
  json.dump(bare, open(tmp_path / "bare.json", "w"))
  for args, says in ((["--seed", "0", whole, first], "given twice"),
                     (["--seed", "0", whole, "--seed", "0", whole], "a seed is given twice"),
                     (["--seed", "0", second, str(tmp_path / "bare.json")], "baselines differ"),
                     (["--seed", "0", whole, "--seed", "1", first], "different budgets"),
                     (["--seed", "0", os.path.join(workdir, "config.json")], "neither a sweep"),
                     (["--seed", "0", str(tmp_path / "absent.json")], "no such file")):
    proc = run_python(["scripts/combine_tradeoff.py", "--out", combined, *args])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert says in proc.stderr.strip().splitlines()[-1]


def test_rerun_resumes_only_what_is_missing(finished_sweep):
  cfg, workdir, _ = finished_sweep
  first, second = (os.path.join(workdir, sweep.folder_name("flops", b)) for b in BUDGETS)
  mtime = lambda *p: os.path.getmtime(os.path.join(*p))
  kept = {p: mtime(first, p, "result.json") for p in PER_BUDGET}
  os.remove(os.path.join(second, "report", "result.json"))
  os.remove(os.path.join(workdir, "results.json"))
  finetune_before = mtime(second, "finetune", "result.json")
  pipeline.run(cfg, workdir)
  assert {p: mtime(first, p, "result.json") for p in PER_BUDGET} == kept
  assert mtime(second, "finetune", "result.json") == finetune_before
  assert os.path.exists(os.path.join(second, "report", "result.json"))
  assert len(_load(workdir, "results.json")["sweep"]) == 2


def test_a_sweep_resumed_with_another_budget_list_is_refused(finished_sweep):
  cfg, workdir, _ = finished_sweep
  other = cfg.copy_and_resolve_references()
  other.select.budgets = (0.75, 0.35)
  before = os.listdir(workdir)
  with pytest.raises(UserError, match="select.budgets"):
    pipeline.run(other, workdir)
  assert os.listdir(workdir) == before


def test_an_unreachable_budget_names_the_smallest_reachable_cost(finished_sweep):
  cfg, workdir, _ = finished_sweep

  class Ctx:  # the two things check_budgets reads
    def __init__(self):
      self.cfg, self.workdir = cfg, workdir

    def read_shared_json(self, *parts):
      return _load(workdir, *parts)

  with pytest.raises(knapsack.InfeasibleBudget, match="smallest"):
    select_phase.check_budgets(Ctx(), (0.5, 0.001))
  select_phase.check_budgets(Ctx(), BUDGETS)  # the sweep's own budgets are reachable


@pytest.mark.parametrize("budgets, needle", [
    ((0.5, 0.5), "twice"), ((0.5, 1.5), "at most 1.0"), ((float("nan"),), "finite"),
    ((0.5, float("inf")), "finite"), ((0.0,), "> 0"), ((-0.25,), "> 0"), (("half",), "numbers")])
def test_bad_budget_lists_are_one_line_errors(budgets, needle):
  cfg = config_lib.default_config()
  cfg.select.budgets = budgets
  with pytest.raises(UserError, match=needle) as e:
    config_lib.validate(cfg)
  assert "\n" not in str(e.value)


# ---- equal total cost ----


def test_ours_adds_up_every_phase_that_made_the_student(tmp_path):
  from compactkd_jax.context import RunContext
  ctx = RunContext(None, str(tmp_path), None, None, None, {})
  ctx.write_json({"train_seconds": 30.0, "score_seconds": 6.0, "train_images": 3200,
                  "score_images": 900}, "distill", "result.json")
  ctx.write_json({"wall_seconds": 4.0, "images": 640}, "refine", "result.json")
  ctx.write_json({"train_seconds": 160.0, "images": 25600, "steps": 200}, "finetune",
                 "result.json")
  cost = equal_cost.ours(ctx)
  assert cost["total_seconds"] == 200.0
  assert cost["finetune_step_equivalents"] == 250.0  # 200 s cost 200 x 200 / 160 fine-tune steps
  assert cost["overhead_seconds"] == 40.0 and cost["overhead_ratio"] == 0.25
  assert cost["images"] == {"distill": 3200, "score": 900, "refine": 640, "finetune": 25600}
  # In a sweep, the distillation is read from the top, the rest from the budget's folder.
  sub = RunContext(None, str(tmp_path / "budget_flops_0.5"), None, None, None, {},
                   root=str(tmp_path))
  sub.write_json({"train_seconds": 80.0, "images": 12800}, "finetune", "result.json")
  assert equal_cost.ours(sub)["total_seconds"] == 30.0 + 6.0 + 80.0


def _sleeping_step(seconds_at_load_one: float, load, calls: list):
  """A step function that takes `seconds_at_load_one` x the machine's current load, and 0.3 s on
  its first call (compilation)."""
  def step(state, batch):
    time.sleep(0.3 if not calls else seconds_at_load_one * load())
    calls.append(batch)
    return state + 1, {"loss": np.float32(0)}
  return step


def test_side_by_side_price_excludes_compilation_and_cancels_a_changing_load():
  """Our step takes 5 ms and the baseline's 10 ms at load 1, while the load climbs from 1 to 4
  during the calibration (another job starting on the cores). Timed side by side in alternating
  rounds the price is still 2; timed one after the other (as a recorded wall against a fresh
  calibration is) it is far off."""
  ticks = []
  load = lambda: 1.0 + 3.0 * min(len(ticks), 160) / 160

  def ticking(step):
    def counted(state, batch):
      ticks.append(1)
      return step(state, batch)
    return counted

  ours_calls, base_calls = [], []
  ours = ticking(_sleeping_step(0.005, load, ours_calls))
  base = ticking(_sleeping_step(0.010, load, base_calls))
  ours_s, base_s = equal_cost.side_by_side_seconds((ours, lambda s: s, 0), (base, lambda s: s, 0))
  timed = equal_cost.CALIBRATION_ROUNDS * equal_cost.CALIBRATION_STEPS
  assert ours_calls == base_calls == list(range(timed + 1))  # one compiling step each, excluded
  assert ours_s < 0.05 and base_s < 0.1  # the 0.3 s compiling calls are not in the mean
  assert base_s / ours_s == pytest.approx(2.0, rel=0.15)
  # The same load ramp timed one after the other: what the price would be without alternation.
  ticks.clear()
  naive = []
  for step in (ours, base):
    start = time.perf_counter()
    for i in range(1, timed + 1):
      step(0, i)
    naive.append(time.perf_counter() - start)
  assert naive[1] / naive[0] > 2.0 * 1.3  # about 3: the baseline was timed at a higher load


def test_matched_steps_count_our_cost_in_fine_tune_steps():
  cost = {"finetune_step_equivalents": 1250.0}
  assert equal_cost.matched_steps(cost, 0.02, 0.01) == 2500  # a baseline step at half the price
  assert equal_cost.matched_steps(cost, 0.02, 0.04) == 625
  assert equal_cost.matched_steps({"finetune_step_equivalents": 0.0}, 0.02, 0.01) == 1


def test_report_states_how_each_baseline_was_priced():
  from compactkd_jax.phases import report
  cost = {"seconds": {"distill": 30.0, "score": 6.0, "refine": 4.0, "finetune": 160.0},
          "images": {"distill": 3200, "score": 900, "refine": 640, "finetune": 25600},
          "total_seconds": 200.0, "overhead_seconds": 40.0, "overhead_ratio": 0.25}
  baseline = {"epochs": 12.5, "train_seconds": 210.0, "match": "total_cost",
              "matched": {"steps": 2500, "seconds_per_step": 0.01,
                          "ours_finetune_seconds_per_step": 0.02,
                          "ours_finetune_step_equivalents": 1250.0}}
  lines = report.cost_lines({"cost": cost, "baselines": {"scratch": baseline}})
  assert "**0.250**" in lines[1]
  assert ("ours cost 1,250 of its fine-tune steps, and this baseline's step costs 0.50 of one"
          in lines[2]) and "1.05x ours" in lines[2]


def test_equal_cost_baselines_train_the_steps_they_were_priced_at(finished_sweep, tmp_path,
                                                                 monkeypatch):
  """match="total_cost" end to end, on a copy of the finished sweep whose baselines are removed:
  each baseline trains the steps saved in matched_steps.json, which are our cost in fine-tune steps
  divided by its step's side-by-side price; a baseline resumed after a crash trains the same steps
  without measuring again."""
  import shutil
  cfg, workdir, _ = finished_sweep
  copy = str(tmp_path / "sweep")
  shutil.copytree(workdir, copy)
  removed = ("baselines", "baseline_scratch", "baseline_kd", "report",
             os.path.join("checkpoints", "baseline_scratch"),
             os.path.join("checkpoints", "baseline_kd"))
  folders = [os.path.join(copy, sweep.folder_name("flops", b)) for b in BUDGETS]
  for folder in folders:
    for name in removed:
      shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
  matched = cfg.copy_and_resolve_references()
  matched.baselines.match = "total_cost"
  matched.phases = tuple(p for p in PHASES if p != "report")
  pipeline.run(matched, copy)
  folder = folders[1]
  saved = _load(folder, "baselines", "matched_steps.json")
  distill, refine = _load(copy, "distill", "result.json"), _load(folder, "refine", "result.json")
  finetune = _load(folder, "finetune", "result.json")
  total = (distill["train_seconds"] + distill["score_seconds"] + refine["wall_seconds"]
           + finetune["train_seconds"])
  equivalents = total / finetune["train_seconds"] * finetune["steps"]
  for kind in ("scratch", "kd"):
    entry = saved[kind]
    assert entry["ours_finetune_step_equivalents"] == pytest.approx(equivalents)
    price = entry["seconds_per_step"] / entry["ours_finetune_seconds_per_step"]
    assert entry["steps"] == max(1, round(equivalents / price))
    result = _load(folder, f"baseline_{kind}", "result.json")
    assert result["steps"] == entry["steps"] and result["match"] == "total_cost"
  # The KD baseline's step is our fine-tune's computation (CE + KD from the same teacher).
  kd_price = saved["kd"]["seconds_per_step"] / saved["kd"]["ours_finetune_seconds_per_step"]
  assert 0.6 < kd_price < 1.7
  # A crash before the KD baseline finished: it trains again, for the saved steps, unmeasured.
  for name in ("baseline_kd", os.path.join("checkpoints", "baseline_kd")):
    shutil.rmtree(os.path.join(folder, name))
  os.remove(os.path.join(folder, "baselines", "result.json"))  # the phase had not finished
  monkeypatch.setattr(equal_cost, "side_by_side_seconds",
                      lambda *a: pytest.fail("a saved match was measured again"))
  pipeline.run(matched, copy)
  assert _load(folder, "baseline_kd", "result.json")["steps"] == saved["kd"]["steps"]
  assert _load(folder, "baselines", "matched_steps.json") == saved


@pytest.mark.parametrize("key, value", [
    ("data.eval_batch_size", 0), ("data.train_limit", -5), ("teacher.options.width", 0.0),
    ("teacher.train.epochs", float("nan")), ("finetune.train.log_every_steps", 0),
    ("baselines.train.learning_rate", float("inf")), ("distill.train.momentum", -0.1),
    ("finetune.kd.temperature", float("nan")), ("finetune.kd.hints", -1.0),
    ("baselines.kd.alpha", 1.5), ("distill.candidates", ())])
def test_values_out_of_range_are_one_line_errors(key, value):
  cfg = config_lib.default_config()
  section, _, leaf = key.rpartition(".")
  target = cfg
  for part in section.split("."):
    target = target[part]
  target[leaf] = value
  with pytest.raises(UserError, match=key.split(".")[0]) as e:
    config_lib.validate(cfg)
  assert "\n" not in str(e.value)


def _copy_student(workdir, d, budget):
  """The files of `workdir` that summarize_finetune.py reads for `budget`, copied into `d`."""
  for part in ("config.json", "teacher", "distill", os.path.join(budget, "select"),
               os.path.join(budget, "refine"), os.path.join(budget, "finetune", "result.json")):
    (d / part).parent.mkdir(parents=True, exist_ok=True)
    copy = shutil.copytree if os.path.isdir(os.path.join(workdir, part)) else shutil.copy
    copy(os.path.join(workdir, part), d / part)


def test_finetune_variants_are_chosen_on_validation(finished_sweep, tmp_path):
  """Copies of a finished student, one as if fine-tuned longer (better on validation, worse on test),
  one as if with feature hints (equal to the base on validation). The summary must name the variants
  by the settings that differ, choose the longer one (validation decides; the tie of the hints with
  the base goes to the base, given first) and judge the target on test."""
  from conftest import run_python
  _, workdir, _ = finished_sweep
  budget = sweep.folder_name("flops", 0.5)
  dirs = []
  for name, epochs, hints, bump in (("base", 0, 0.0, 0.0), ("long", 1, 0.0, 0.01),
                                    ("hints", 0, 1.0, 0.0)):
    d = tmp_path / name
    _copy_student(workdir, d, budget)
    config, result = _load(d, "config.json"), _load(d, budget, "finetune", "result.json")
    config["finetune"]["train"]["epochs"] += epochs
    config["finetune"]["kd"]["hints"] = hints
    result["val_accuracy"] += bump
    result["test_accuracy"] -= bump
    json.dump(config, open(d / "config.json", "w"))
    json.dump(result, open(d / budget / "finetune" / "result.json", "w"))
    dirs.append(str(d))
  out = str(tmp_path / "variants")
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget, *dirs])
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.load(open(out + ".json"))
  epochs = _load(workdir, "config.json")["finetune"]["train"]["epochs"]
  assert [v["variant"] for v in summary["variants"]] == [
      f"kd.hints=0.0, train.epochs={epochs}", f"kd.hints=0.0, train.epochs={epochs + 1}",
      f"kd.hints=1.0, train.epochs={epochs}"]
  assert summary["chosen"] == summary["variants"][1]["variant"]
  teacher = _load(workdir, "teacher", "result.json")["test_accuracy"]
  long = summary["variants"][1]
  assert long["test_minus_teacher"][0] == pytest.approx(
      _load(dirs[1], budget, "finetune", "result.json")["test_accuracy"] - teacher)
  met = "met" if long["test_minus_teacher"][0] >= 0 else "not met"
  assert f"(the student at or above its teacher on test, mean of seeds): **{met}**" in open(out + ".md").read()
  # A tie on validation goes to the variant given first.
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget, dirs[0], dirs[2]])
  assert proc.returncode == 0 and json.load(open(out + ".json"))["chosen"] == "kd.hints=0.0"
  # A variant given twice for a seed.
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget, dirs[1]] + dirs)
  assert proc.returncode != 0 and "one workdir per fine-tune variant and seed" in proc.stderr
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget, dirs[0]])
  assert proc.returncode != 0 and "do not differ in any fine-tune setting" in proc.stderr


def test_recipe_variants_may_hold_different_students(finished_sweep, tmp_path):
  """A copy of a finished student as if distilled longer: a different refined student (its refine
  digest changed), better on validation. Compared on fine-tune settings alone the copies must be
  refused (no fine-tune setting differs; and where one does, a seed's students differ); with
  --stages naming the distillation, the variant is labelled by it, chosen on validation, and the
  table gives each student's cost and overhead from the workdir's own files."""
  from conftest import run_python
  _, workdir, _ = finished_sweep
  budget = sweep.folder_name("flops", 0.5)
  dirs = []
  for name, longer, finetune_longer in (("base", 0.0, 0), ("long", 0.5, 0), ("other", 0.0, 1)):
    d = tmp_path / name
    _copy_student(workdir, d, budget)
    if longer or finetune_longer:
      config, refine = _load(d, "config.json"), _load(d, budget, "refine", "result.json")
      result = _load(d, budget, "finetune", "result.json")
      config["distill"]["train"]["epochs"] += longer
      config["finetune"]["train"]["epochs"] += finetune_longer
      refine["inputs_digest"] = "another student"
      result["val_accuracy"] += 0.01
      json.dump(config, open(d / "config.json", "w"))
      json.dump(refine, open(d / budget / "refine" / "result.json", "w"))
      json.dump(result, open(d / budget / "finetune" / "result.json", "w"))
    dirs.append(str(d))
  out = str(tmp_path / "recipe")
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget, *dirs[:2]])
  assert proc.returncode != 0 and "do not differ in any fine-tune setting" in proc.stderr
  # A fine-tune setting differs too, but the students are not one: refused without --stages.
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget,
                     dirs[0], dirs[2]])
  assert proc.returncode != 0 and "refined different students" in proc.stderr
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget,
                     "--stages", "distill,refine,finetune", *dirs[:2]])
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.load(open(out + ".json"))
  epochs = _load(workdir, "config.json")["distill"]["train"]["epochs"]
  assert [v["variant"] for v in summary["variants"]] == [
      f"distill.train.epochs={epochs}", f"distill.train.epochs={epochs + 0.5}"]
  assert summary["chosen"] == summary["variants"][1]["variant"]
  plan, distill = _load(workdir, budget, "select", "plan.json"), _load(workdir, "distill", "result.json")
  overhead = (distill["train_seconds"] + distill["score_seconds"]
              + _load(workdir, budget, "refine", "result.json")["wall_seconds"])
  assert summary["variants"][0]["student_cost"] == [plan["cost"]]
  assert summary["variants"][0]["overhead_seconds"] == [pytest.approx(overhead)]
  assert f"| 0 | distill.train.epochs={epochs} | {plan['cost']:,.0f} | {overhead:.0f} |" in open(out + ".md").read()
  proc = run_python(["scripts/summarize_finetune.py", "--out", out, "--budget", budget,
                     "--stages", "distill,teacher", *dirs[:2]])
  assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0 and "--stages" in proc.stderr
  # The base read back from that committed summary (its workdir gone) makes the same table.
  shutil.rmtree(dirs[0])
  again = str(tmp_path / "again")
  for base, says in ((f"{out}.json:base", None), (f"{out}.json:absent", "holds no run absent"),
                     (f"{out}.json", "give SUMMARY.json:")):
    proc = run_python(["scripts/summarize_finetune.py", "--out", again, "--budget", budget,
                       "--stages", "distill,refine,finetune", "--base", base, dirs[1]])
    if says:
      assert proc.returncode == 1 and says in proc.stderr.strip().splitlines()[-1], proc.stderr
      continue
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.load(open(again + ".json"))["variants"] == summary["variants"]
    assert f"The base rows (base) are read from `{out}.json`" in open(again + ".md").read()
  # Read back for a narrower comparison, the base keeps only the compared stages' settings.
  proc = run_python(["scripts/summarize_finetune.py", "--out", again, "--budget", budget,
                     "--base", f"{out}.json:base", dirs[1]])
  assert proc.returncode == 1 and "do not differ in any fine-tune setting" in proc.stderr
  # A summary of fine-tune settings alone cannot be the base of a comparison of distillations.
  narrow = dict(summary["runs"][0], settings={k: v for k, v in summary["runs"][0]["settings"].items()
                                              if k.startswith("finetune.")})
  json.dump({"runs": [narrow]}, open(tmp_path / "narrow.json", "w"))
  proc = run_python(["scripts/summarize_finetune.py", "--out", again, "--budget", budget,
                     "--stages", "distill,refine,finetune", "--base",
                     f"{tmp_path / 'narrow.json'}:base", dirs[1]])
  assert proc.returncode == 1 and "needs all of them" in proc.stderr
