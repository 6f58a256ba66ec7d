"""A teacher run killed with SIGKILL mid-training, its newest checkpoint then corrupted, and started
again with the same command: it skips the unreadable checkpoint, continues from the previous good one,
and ends exactly where an uninterrupted run ends."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT

OVERRIDES = ["--config.teacher.options.width=0.25", "--config.teacher.train.steps=60",
             "--config.teacher.train.batch_size=32", "--config.teacher.train.log_every_steps=5",
             "--config.teacher.train.checkpoint_every_steps=10", "--config.data.train_limit=2000",
             "--config.data.validation_size=300", "--config.data.test_limit=300",
             "--config.data.eval_batch_size=100"]


def _command(workdir):
  return [sys.executable, "-m", "compactkd_jax.main", "--config",
          os.path.join("configs", "fashion_mnist_resnet20_teacher.py"), "--workdir", workdir,
          *OVERRIDES]


def _run(workdir):
  proc = subprocess.run(_command(workdir), cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _result(workdir):
  with open(os.path.join(workdir, "teacher", "result.json")) as f:
    return json.load(f)


def _corrupt(directory):
  """Truncates every file of a checkpoint to half its size, as a crash mid-copy would."""
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      size = os.path.getsize(path)
      with open(path, "r+b") as f:
        f.truncate(size // 2)


def test_sigkill_then_rerun_equals_uninterrupted_run(tmp_path, fmnist_dir):
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(_command(killed), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  deadline = time.time() + 300
  ckpts = os.path.join(killed, "checkpoints", "teacher")
  # Kill once a checkpoint past the first one is finalized (orbax renames a finished save into place).
  while time.time() < deadline and not [d for d in glob.glob(os.path.join(ckpts, "*"))
                                        if os.path.basename(d).isdigit() and int(os.path.basename(d)) >= 20]:
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(0.2)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(killed, "teacher", "result.json"))
  steps = sorted(int(os.path.basename(d)) for d in glob.glob(os.path.join(ckpts, "*"))
                 if os.path.basename(d).isdigit())
  assert len(steps) >= 2, steps
  _corrupt(os.path.join(ckpts, str(steps[-1])))

  resumed = _run(killed)
  assert f"checkpoint {steps[-1]} is unreadable" in resumed.stderr
  assert f"resumed from checkpoint at step {steps[-2]}" in resumed.stderr
  assert "step 5/60" not in resumed.stderr  # it did not start over

  fresh = str(tmp_path / "fresh")
  _run(fresh)
  a, b = _result(killed), _result(fresh)
  assert a["val_accuracy"] == b["val_accuracy"] and a["test_accuracy"] == b["test_accuracy"]
