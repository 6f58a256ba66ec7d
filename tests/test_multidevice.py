"""The same steps on 1, 2 and 4 forced CPU devices, and on two processes joined by jax.distributed
on localhost that each hold only their own half of the data (config.data.shards=2), give the same
losses and parameters within float tolerance: teacher step, parallel distillation step, KD
fine-tune step. The batches depend on the shard count only, and BN statistics are over the global
batch, so nothing differs but the order of float reductions."""
import glob
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, pipeline_command, pipeline_outcome, run_python

WORKER = os.path.join("tests", "parallel_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# (label, devices, shards): unsharded on 1 and 2 devices; two shards on 1 and 4 devices and on
# two processes of one device each.
DEVICE_RUNS = (("1", 1, 1), ("2", 2, 1), ("1x2shards", 1, 2), ("4x2shards", 4, 2))
SAME = (("2", "1"), ("4x2shards", "1x2shards"), ("2proc", "1x2shards"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
  request.getfixturevalue("fmnist_dir")
  out = {}
  for label, devices, shards in DEVICE_RUNS:
    path = str(tmp_path_factory.mktemp(f"dev{label}") / "out.npz")
    proc = run_python([WORKER, "devices", str(devices), str(shards), path], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out[label] = dict(np.load(path))
  path, port = str(tmp_path_factory.mktemp("proc2") / "out.npz"), _free_port()
  procs = [subprocess.Popen([sys.executable, WORKER, "process", str(i), "2", str(port), "2", path],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
           for i in range(2)]
  for p in procs:
    log = p.communicate(timeout=600)[0]
    assert p.returncode == 0, log[-3000:]
  out["2proc"] = dict(np.load(path))
  return out


@pytest.mark.parametrize("many,one", SAME)
@pytest.mark.parametrize("phase", ["teacher", "distill", "finetune"])
def test_same_losses_and_parameters_on_n_devices(runs, many, one, phase):
  one, many = runs[one], runs[many]
  # The teacher's first loss sees identical weights: only the reduction order can differ. Later
  # steps (and the phases that start from the trained teacher) carry the amplified rounding
  # differences of earlier updates, so they get a looser bound.
  if phase == "teacher":
    np.testing.assert_allclose(many["teacher_losses"][0], one["teacher_losses"][0], rtol=1e-5)
  np.testing.assert_allclose(many[f"{phase}_losses"], one[f"{phase}_losses"], rtol=2e-3)
  keys = [k for k in one if k.startswith(phase) and not k.endswith("_losses")]
  assert keys and set(keys) == {k for k in many if k.startswith(phase) and not k.endswith("_losses")}
  for k in keys:
    np.testing.assert_allclose(many[k], one[k], rtol=1e-2, atol=1e-3, err_msg=k)


def test_shards_change_the_batches(runs):
  """The comparisons above are not vacuous: two shards make other batches, hence other losses."""
  assert not np.allclose(runs["1x2shards"]["teacher_losses"], runs["1"]["teacher_losses"])


def test_training_moved_the_parameters(runs):
  losses = runs["1"]["teacher_losses"]
  assert np.all(np.isfinite(losses)) and losses[-1] != losses[0]


# ---- The whole CLI pipeline on two processes sharing one workdir, against one process ----

@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, request):
  """The tiny pipeline with two data shards: in one process with two devices, and in two processes
  of one device each joined by jax.distributed on localhost (each holding one shard, process 0
  writing the files). Same devices, same reduction order: the two must agree to float precision.
  (Against one device they agree step by step, above; over a whole pipeline at the tiny config's
  high learning rate, rounding differences grow into different BN statistics and plans.)"""
  request.getfixturevalue("fmnist_dir")
  one = str(tmp_path_factory.mktemp("cli_one") / "run")
  proc = run_python(pipeline_command(one, "--config.data.shards=2")[1:], timeout=900,
                    extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  two, port = str(tmp_path_factory.mktemp("cli_two") / "run"), _free_port()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  procs = [subprocess.Popen(pipeline_command(two, f"--coordinator_address=127.0.0.1:{port}",
                                             "--num_processes=2", f"--process_id={i}"),
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env) for i in range(2)]
  logs = [p.communicate(timeout=900)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  return one, two, logs


# Two whole pipelines (~10 minutes on 2 cores); the two-process steps above run by default.
@pytest.mark.slow
def test_two_process_cli_run_matches_one_process(cli_runs):
  one, two, logs = cli_runs
  assert "2 process(es), 2 data shard(s)" in logs[0]
  plan_1, acc_1, params_1 = pipeline_outcome(one)
  plan_2, acc_2, params_2 = pipeline_outcome(two)
  assert plan_2 == plan_1
  for row in acc_1:  # accuracies on 300 examples: at most one borderline flip
    np.testing.assert_allclose(acc_2[row], acc_1[row], atol=1 / 300 + 1e-9, err_msg=row)
  for k in params_1:
    np.testing.assert_allclose(params_2[k], params_1[k], rtol=1e-4, atol=1e-5, err_msg=k)
  for name in ("report.md", "tradeoff.png", "export/student.jax_export", "config.json"):
    assert os.path.exists(os.path.join(two, name)), name
  assert not glob.glob(os.path.join(two, "**", "*.tmp"), recursive=True)  # no torn writes left
