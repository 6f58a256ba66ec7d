"""Tests for the structured-pruning peer (scripts/peer_pruning.py) and the PyTorch training recipe
it shares with the benchmark (scripts/torch_baseline/finetune.py): the recipe's loss and optimizer
against compactkd_jax's (optax, losses), Torch-Pruning reaching a MAC budget as counted by the
project's convention (checked against ptflops on the pruned network), and bad input."""
import json
import os
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO_ROOT, make_tiny_config, run_python
from torch_reference import finetune, models as tm, torch
from compactkd_jax import export_torch, losses, train

tp = pytest.importorskip("torch_pruning")
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import peer_pruning  # noqa: E402

TEACHER = os.path.join(REPO_ROOT, "teachers", "fashion_mnist_resnet20_w0.5")
SHAPE = (28, 28, 1)


def test_kd_loss_matches_compactkd_losses():
  rng = np.random.default_rng(0)
  student, teacher = rng.normal(0, 3, (16, 10)), rng.normal(0, 3, (16, 10))
  labels = rng.integers(0, 10, 16)
  teacher_module = torch.nn.Linear(1, 1)  # stands in for the teacher: returns fixed logits
  teacher_module.forward = lambda x: torch.tensor(teacher, dtype=torch.float32)
  got = finetune.kd_loss(teacher_module, 0.9, 4.0)(
      torch.tensor(student, dtype=torch.float32), None, torch.tensor(labels))
  s, t = jnp.asarray(student, jnp.float32), jnp.asarray(teacher, jnp.float32)
  expected = 0.1 * losses.cross_entropy(s, jnp.asarray(labels)) + 0.9 * losses.hinton_kd(s, t, 4.0)
  assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_sgd_cosine_matches_optax_recipe():
  """Nesterov SGD, weight decay added to the gradient, cosine decay per step: the same parameter
  trajectory as train.make_optimizer over a whole schedule (a wrong order of decay and momentum, or
  an off-by-one in the schedule, moves it far beyond the tolerance)."""
  tcfg = make_tiny_config().finetune.train
  tcfg.learning_rate, steps = 0.1, 6
  rng = np.random.default_rng(1)
  w0, grads = rng.normal(size=(5,)), rng.normal(size=(steps, 5))
  tx = train.make_optimizer(tcfg, steps)
  w, opt_state = jnp.asarray(w0, jnp.float32), None
  opt_state = tx.init(w)
  param = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
  model = torch.nn.Module()
  model.w = param
  opt, schedule = finetune.sgd_cosine(model, tcfg.learning_rate, steps, tcfg.momentum,
                                      tcfg.nesterov, tcfg.weight_decay)
  for g in grads:
    updates, opt_state = tx.update(jnp.asarray(g, jnp.float32), opt_state, w)
    w = optax.apply_updates(w, updates)
    param.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
    schedule.step()
  np.testing.assert_allclose(param.detach().numpy(), np.asarray(w), atol=1e-6)
  assert np.abs(np.asarray(w) - w0).max() > 0.1  # the parameters moved


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("peer") / "teacher.pth")
  description = export_torch.export_teacher(TEACHER, out)
  model = tm.zoo_model(description["model"], 10, **description["torch_options"])
  model.load_state_dict(torch.load(out, weights_only=True))
  return model.eval()


@pytest.mark.parametrize("variant", peer_pruning.VARIANTS)
def test_pruned_teacher_meets_the_budget_counted_like_ptflops(teacher, variant):
  ptflops = pytest.importorskip("ptflops")
  full = tm.count_macs(teacher, SHAPE)
  limit = 0.5 * full
  pruned, info = peer_pruning.prune(teacher, variant, limit, SHAPE, steps=400)
  assert info["reached"] and info["macs"] == tm.count_macs(pruned, SHAPE) <= limit
  # Close to the budget: each pruning step removes a sliver (uniform: whole channels of 4-16-wide
  # layers, so the last step can overshoot by more).
  assert info["macs"] > (0.9 if variant == "global" else 0.8) * limit
  macs, _ = ptflops.get_model_complexity_info(pruned.eval(), (1, 28, 28), as_strings=False,
                                              print_per_layer_stat=False, backend="aten")
  assert info["macs"] == pytest.approx(macs, rel=0.01)
  assert tm.count_macs(teacher, SHAPE) == full  # the teacher itself is untouched
  residual = [b.conv2.out_channels for b in pruned.modules() if isinstance(b, tm.ZooBasicBlock)]
  assert residual == [b.conv2.out_channels for b in teacher.modules()
                      if isinstance(b, tm.ZooBasicBlock)]  # option A: the stream stays whole


def _fake_finished_workdir(path, limit: float) -> str:
  """What peer_pruning reads of a finished run: config.json, one budget's plan and results."""
  cfg = make_tiny_config()
  cfg.teacher.checkpoint = TEACHER
  os.makedirs(path / "budget_macs_0.01" / "select")
  (path / "config.json").write_text(cfg.to_json())
  (path / "budget_macs_0.01" / "select" / "plan.json").write_text(json.dumps({"limit": limit}))
  (path / "budget_macs_0.01" / "results.json").write_text("{}")
  return str(path)


def test_unreachable_budget_is_one_line_before_any_training(tmp_path):
  workdir = _fake_finished_workdir(tmp_path / "run", limit=10_000)
  proc = run_python(["scripts/peer_pruning.py", "--workdir", workdir, "--threads", "1"])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: Torch-Pruning (uniform) cannot reach 10,000 MACs"), last
  assert not os.path.exists(os.path.join(workdir, "budget_macs_0.01", peer_pruning.PEER_DIR))


def test_unfinished_run_and_missing_teacher_are_one_line(tmp_path):
  proc = run_python(["scripts/peer_pruning.py", "--workdir", str(tmp_path)])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "is not a workdir of ours" in proc.stderr.strip().splitlines()[-1]
  workdir = _fake_finished_workdir(tmp_path / "run", limit=1e6)
  cfg = json.loads((tmp_path / "run" / "config.json").read_text())
  cfg["teacher"]["checkpoint"] = str(tmp_path / "nothing")
  (tmp_path / "run" / "config.json").write_text(json.dumps(cfg))
  proc = run_python(["scripts/peer_pruning.py", "--workdir", workdir])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("error: no finished teacher in")


def test_unknown_variant_is_one_line(tmp_path):
  workdir = _fake_finished_workdir(tmp_path / "run", limit=1e6)
  proc = run_python(["scripts/peer_pruning.py", "--workdir", workdir, "--variants", "random"])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "unknown variant(s) ['random']; valid: uniform, global" in proc.stderr.strip().splitlines()[-1]


def test_ours_from_a_sweep_summary_must_have_the_workdirs_plan(tmp_path):
  """--ours: a workdir rebuilt up to refinement takes our results from a finished sweep's summary,
  only when its plan is that summary's; without --ours an unfinished budget stops the run."""
  workdir = _fake_finished_workdir(tmp_path / "run", limit=10_000)
  budget = tmp_path / "run" / "budget_macs_0.01"
  os.remove(budget / "results.json")
  os.makedirs(budget / "refine")
  plan = {"limit": 10_000, "choice": {"b0": "keep", "b1": "skip"}}
  (budget / "select" / "plan.json").write_text(json.dumps(plan))
  proc = run_python(["scripts/peer_pruning.py", "--workdir", workdir, "--threads", "1"])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "has no results.json: finish our run first" in proc.stderr.strip().splitlines()[-1]
  summary = tmp_path / "sweep.json"
  other = {"limit": 10_000, "choice": {"b0": "keep", "b1": "slim_0.5"}}
  summary.write_text(json.dumps({"budgets": {"budget_macs_0.01": {"plan": other}}}))
  proc = run_python(["scripts/peer_pruning.py", "--workdir", workdir, "--threads", "1",
                     "--ours", str(summary)])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "plan differs from" in proc.stderr and "at block b1" in proc.stderr
  summary.write_text(json.dumps({"budgets": {"budget_macs_0.01": {"plan": plan}}}))
  proc = run_python(["scripts/peer_pruning.py", "--workdir", workdir, "--threads", "1",
                     "--ours", str(summary)])
  # Accepted as our run: it goes on to prune, and stops at this budget the pruner cannot reach.
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "cannot reach 10,000 MACs" in proc.stderr.strip().splitlines()[-1]
  assert not os.path.exists(os.path.join(workdir, peer_pruning.PEER_DIR, "ours.json"))


def test_without_torch_pruning_installed_is_one_line(tmp_path):
  """The quickstart's setup has no PyTorch: the peer says which extra to install, no traceback."""
  (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['torch_pruning'] = None\n")
  env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
  proc = run_python(["scripts/peer_pruning.py", "--workdir", str(tmp_path)], extra_env=env)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: torch_pruning is needed to prune the teacher; install the test extra "
      "(pip install -e '.[test]', or bash scripts/setup.sh --test)")
