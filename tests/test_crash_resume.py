"""Crash safety and determinism, with subprocesses and SIGKILL:
- a teacher run killed mid-training, its newest checkpoint then corrupted, and started again with
  the same command: it skips the unreadable checkpoint, continues from the previous good one, and
  ends exactly where an uninterrupted run ends;
- the whole pipeline killed in the distillation, then again in the fine-tune, parked and unparked
  elsewhere (scripts/park.sh: how a run crosses sessions) and started again there: the same plan,
  accuracies and parameters, bit for bit, as an uninterrupted run; finished phases are not
  recomputed;
- two uninterrupted runs of the same config and seed are bit-identical."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import (REPO_ROOT, assert_identical_outcomes, pipeline_command, pipeline_outcome,
                      run_python)

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


# ---- The whole pipeline: killed in the distillation and again in the fine-tune, then resumed ----

def _kill_when_checkpointed(workdir, pattern, min_step):
  """Starts the pipeline and SIGKILLs it once a checkpoint at step >= min_step of `pattern` (a
  glob under <workdir>/checkpoints) is finalized."""
  proc = subprocess.Popen(pipeline_command(workdir), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  deadline = time.time() + 500
  while not [d for d in glob.glob(os.path.join(workdir, "checkpoints", pattern, "*"))
             if os.path.basename(d).isdigit() and int(os.path.basename(d)) >= min_step]:
    assert proc.poll() is None, "the run ended before it could be killed"
    assert time.time() < deadline, "no checkpoint to kill at"
    time.sleep(0.1)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()


def _park_and_unpark(workdir, tmp_path):
  """scripts/park.sh's round trip: the workdir parked (each loop's newest checkpoint alone) and
  copied back to a new place, as the next session would. Returns the new workdir."""
  env = dict(os.environ, PARK_DIR=str(tmp_path / "parked"))
  park = os.path.join(REPO_ROOT, "scripts", "park.sh")
  log = tmp_path / "run.log"  # a resumed run's line, naming its workdir by the absolute path
  log.write_text(f"[distill] already done, skipping (delete {workdir}/distill to redo it)\n")
  subprocess.run(["bash", park, workdir, str(log)], check=True, env=env, capture_output=True)
  moved = str(tmp_path / "next_session" / "workdir")
  subprocess.run(["bash", park, "--unpark", os.path.basename(workdir), moved], check=True, env=env,
                 capture_output=True)
  # No machine path is committed: not in orbax's markers, not in the log.
  for marker in glob.glob(os.path.join(moved, "**", "commit_success.txt"), recursive=True):
    assert workdir not in open(marker).read()
  with open(moved + ".log") as f:
    assert f.read() == f"[distill] already done, skipping (delete {os.path.basename(workdir)}" \
                       "/distill to redo it)\n"
  loops = glob.glob(os.path.join(moved, "checkpoints", "*")) + glob.glob(
      os.path.join(moved, "budget_*", "checkpoints", "*"))
  assert loops
  for loop in loops:
    steps = [d for d in os.listdir(loop) if d.isdigit()]
    assert len(steps) == 1, (loop, steps)
  return moved


def _pipeline(workdir):
  proc = run_python(pipeline_command(workdir)[1:], timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, fmnist_dir):
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  _pipeline(workdir)
  return workdir


# A third whole pipeline, left to the slow run: the killed-and-resumed run below is compared bit
# for bit with the uninterrupted one, which already fails when two fresh runs differ.
@pytest.mark.slow
def test_same_config_and_seed_give_bit_identical_results(uninterrupted, tmp_path, fmnist_dir):
  again = str(tmp_path / "again")
  _pipeline(again)
  assert_identical_outcomes(pipeline_outcome(again), pipeline_outcome(uninterrupted))


def test_pipeline_killed_in_distill_and_finetune_resumes_to_the_same_result(uninterrupted,
                                                                           tmp_path, fmnist_dir):
  killed = str(tmp_path / "killed")
  _kill_when_checkpointed(killed, "distill*", 20)
  assert os.path.exists(os.path.join(killed, "teacher", "result.json"))
  assert not os.path.exists(os.path.join(killed, "distill", "result.json"))
  teacher_done = os.path.getmtime(os.path.join(killed, "teacher", "result.json"))
  _kill_when_checkpointed(killed, "finetune", 20)
  assert not os.path.exists(os.path.join(killed, "finetune", "result.json"))
  distill_done = os.path.getmtime(os.path.join(killed, "distill", "result.json"))
  killed = _park_and_unpark(killed, tmp_path)
  resumed = _pipeline(killed)
  # Completed phases were not recomputed; the fine-tune continued from its checkpoint.
  assert os.path.getmtime(os.path.join(killed, "teacher", "result.json")) == teacher_done
  assert os.path.getmtime(os.path.join(killed, "distill", "result.json")) == distill_done
  assert "[finetune] resumed from checkpoint at step" in resumed.stderr
  # Its cost counts what the killed process spent up to that checkpoint (the equal-cost baselines
  # are priced from it), besides its own time.
  with open(os.path.join(killed, "finetune", "result.json")) as f:
    finetune = json.load(f)
  assert 0 < finetune["resumed_seconds"] < finetune["train_seconds"]
  assert_identical_outcomes(pipeline_outcome(killed), pipeline_outcome(uninterrupted))
