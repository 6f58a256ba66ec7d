"""Tests for the command line (`python -m compactkd_jax.main`): user mistakes end in one clear line
on stderr and a non-zero exit, never in a traceback."""
import glob
import importlib.util
import os

import numpy as np
import pytest

from compactkd_jax import config as config_lib
from conftest import REPO_ROOT, run_python

CONFIG = os.path.join(REPO_ROOT, "configs", "fashion_mnist_resnet20_teacher.py")
# Tiny limits, so that a case the CLI failed to reject would still end in seconds.
TINY = ["--config.data.train_limit=600", "--config.data.validation_size=100",
        "--config.data.test_limit=100", "--config.teacher.train.steps=2",
        "--config.teacher.options.width=0.25"]


def _main(workdir, *flags):
  return run_python(["-m", "compactkd_jax.main", f"--config={CONFIG}", f"--workdir={workdir}",
                     *TINY, *flags], timeout=300)


def _assert_one_line_error(proc, *needles):
  stderr = proc.stderr
  assert proc.returncode != 0, f"exit 0; stderr tail:\n{stderr[-2000:]}"
  assert "Traceback" not in stderr, f"traceback on stderr:\n{stderr[-3000:]}"
  errors = [line for line in stderr.splitlines()
            if line.startswith("error:") or line.startswith("FATAL Flags parsing error")]
  assert len(errors) == 1, f"expected one error line; stderr tail:\n{stderr[-2000:]}"
  for needle in needles:
    assert needle in errors[0], errors[0]
  return errors[0]


def test_unknown_model(tmp_path):
  line = _assert_one_line_error(_main(tmp_path / "w", "--config.teacher.model=resnet21"),
                                "resnet21")
  assert "resnet20" in line and "mobilenet_v2" in line  # the valid names are listed


def test_unknown_config_key(tmp_path):
  proc = _main(tmp_path / "w", "--config.teacher.nope=1")
  _assert_one_line_error(proc, "nope")
  assert not (tmp_path / "w").exists()  # rejected before anything was written


def test_missing_data_dir(tmp_path):
  _assert_one_line_error(_main(tmp_path / "w", "--config.data.data_dir=/nonexistent"),
                         "/nonexistent", "does not exist")


def test_unknown_tfds_dataset(tmp_path):
  proc = _main(tmp_path / "w", "--config.data.source=tfds", "--config.data.name=no_such_dataset")
  _assert_one_line_error(proc, "no_such_dataset")


@pytest.mark.parametrize("budgets, needle", [
    ("(0.5,0.5)", "twice"), ("(0.5,1.5)", "at most 1.0"), ("(0.5,1e999)", "finite"), ("(0.5,nan)", "numbers"),
    ("('half',)", "numbers")])
def test_bad_budget_list(tmp_path, budgets, needle):
  proc = _main(tmp_path / "w", f"--config.select.budgets={budgets}")
  _assert_one_line_error(proc, "select.budgets", needle)
  assert not (tmp_path / "w").exists()


def test_missing_workdir_flag():
  proc = run_python(["-m", "compactkd_jax.main", f"--config={CONFIG}"], timeout=120)
  _assert_one_line_error(proc, "workdir")


def test_unknown_phase(tmp_path):
  proc = _main(tmp_path / "w", "--config.phases=('teacher','nope')")
  _assert_one_line_error(proc, "nope", "teacher")


def test_distributed_without_peers(tmp_path):
  proc = _main(tmp_path / "w", "--distributed")
  _assert_one_line_error(proc, "cannot join the multi-process run", "--coordinator_address")


def test_loaded_teacher_of_another_image_shape(tmp_path, fmnist_dir):
  """A teacher saved for 32x32x3 images (CIFAR), given Fashion-MNIST's 28x28x1: named, not run."""
  import jax
  from compactkd_jax import artifacts, feed
  from compactkd_jax.models import get_model
  net = get_model("resnet20", 10, width=0.25)
  variables = jax.jit(net.init)(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
  artifacts.save_model(str(tmp_path / "cifar_teacher"), net, variables, (32, 32, 3), 10,
                       feed.Preprocess((0.5,) * 3, (0.25,) * 3))
  proc = _main(tmp_path / "w", f"--config.teacher.checkpoint={tmp_path / 'cifar_teacher'}")
  _assert_one_line_error(proc, "expects images (32, 32, 3)", "(28, 28, 1)",
                         "use a teacher trained on this dataset")
  assert (tmp_path / "cifar_teacher" / "model.json").exists()  # nothing of the user's was touched


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "*.py"))),
                         ids=os.path.basename)
def test_every_config_file_is_valid(path):
  spec = importlib.util.spec_from_file_location("config_under_test", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config()
  config_lib.validate(cfg)
  assert module.__doc__ and "python -m compactkd_jax.main" in module.__doc__  # says how to run it


# ---- config files that are broken, workdirs that cannot hold a run, files that are corrupt ----

@pytest.mark.parametrize("source, needle", [
    ("def get_config(:\n", "line 1: invalid syntax"),
    ("def get_config():\n  return undefined_name\n", "raised NameError"),
    ("raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ("x = 1\n", "has no get_config()"),
    ("def get_config():\n  return 5\n", "returned int, not an ml_collections.ConfigDict")],
    ids=["syntax", "name_error", "raises_on_import", "no_get_config", "not_a_configdict"])
def test_broken_config_file(tmp_path, source, needle):
  path = tmp_path / "broken.py"
  path.write_text(source)
  proc = run_python(["-m", "compactkd_jax.main", f"--config={path}",
                     f"--workdir={tmp_path / 'w'}"], timeout=120)
  _assert_one_line_error(proc, str(path), needle)
  assert not (tmp_path / "w").exists()


def test_missing_config_file(tmp_path):
  proc = run_python(["-m", "compactkd_jax.main", f"--config={tmp_path / 'nope.py'}",
                     f"--workdir={tmp_path / 'w'}"], timeout=120)
  _assert_one_line_error(proc, "no config file", "nope.py")


def test_workdir_that_is_a_file(tmp_path):
  (tmp_path / "w").write_text("my notes")
  _assert_one_line_error(_main(tmp_path / "w"), "is a file")
  assert (tmp_path / "w").read_text() == "my notes"


def test_workdir_that_cannot_be_written():
  _assert_one_line_error(_main("/proc/compactkd_no_such_dir/w"), "cannot write to --workdir")


def test_corrupt_config_json_is_named_and_kept(tmp_path):
  (tmp_path / "w").mkdir()
  (tmp_path / "w" / "config.json").write_text('{"seed": 0, "data": ')  # a run killed mid-write
  _assert_one_line_error(_main(tmp_path / "w"), "config.json", "corrupt")
  assert (tmp_path / "w" / "config.json").read_text() == '{"seed": 0, "data": '


def test_corrupt_model_json_behind_teacher_checkpoint(tmp_path):
  (tmp_path / "teacher").mkdir()
  (tmp_path / "teacher" / "model.json").write_text("not json")
  proc = _main(tmp_path / "w", f"--config.teacher.checkpoint={tmp_path / 'teacher'}")
  _assert_one_line_error(proc, "model.json", "corrupt")


def test_failed_run_does_not_lock_the_workdir(tmp_path, fmnist_dir):
  """A run that fails before computing anything (a wrong data directory) leaves nothing that
  refuses the corrected command."""
  _assert_one_line_error(_main(tmp_path / "w", "--config.data.data_dir=/nonexistent"),
                         "does not exist")
  assert not (tmp_path / "w" / "config.json").exists()
  proc = _main(tmp_path / "w", "--config.teacher.train.checkpoint_every_steps=2")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (tmp_path / "w" / "teacher" / "result.json").exists()


# ---- the other command-line tools: cost and convert ----

@pytest.mark.parametrize("flags, needle", [
    (["--image_shape", "28,28"], "--image_shape takes H,W,C"),
    (["--image_shape", "0,0,1"], "--image_shape takes H,W,C"),
    (["--image_shape", "a,b,c"], "--image_shape takes H,W,C"),
    (["--num_classes", "0"], "--num_classes must be at least 2"),
    (["--num_classes", "-3"], "--num_classes must be at least 2"),
    (["--width", "0"], "--width must be a finite number > 0"),
    (["--width", "nan"], "--width must be a finite number > 0"),
    (["--shortcut", "C"], "shortcut")],
    ids=["two_values", "zero_size", "not_numbers", "zero_classes", "negative_classes",
         "zero_width", "nan_width", "bad_shortcut"])
def test_cost_bad_flags(flags, needle):
  proc = run_python(["-m", "compactkd_jax.cost", "--model", "resnet20", *flags], timeout=120)
  _assert_one_line_error(proc, needle)


@pytest.mark.parametrize("flags, needle", [
    (["--std", "0,0,0"], "--std must be > 0"),
    (["--mean", "x"], "--mean takes finite numbers"),
    (["--std", "inf,1,1"], "--std takes finite numbers"),
    (["--out_dir", "FILE"], "is a file"),
    ([], "cannot read PyTorch checkpoint")],
    ids=["zero_std", "mean_not_numbers", "inf_std", "out_dir_is_a_file", "empty_pth"])
def test_convert_bad_flags(tmp_path, flags, needle):
  pytest.importorskip("torch")
  (tmp_path / "empty.pth").write_bytes(b"")
  (tmp_path / "FILE").write_text("keep me")
  flags = [str(tmp_path / "FILE") if f == "FILE" else f for f in flags]
  proc = run_python(["-m", "compactkd_jax.convert", "--state_dict", str(tmp_path / "empty.pth"),
                     "--model", "resnet20", "--out_dir", str(tmp_path / "out"), *flags],
                    timeout=120)
  _assert_one_line_error(proc, needle)
  assert not (tmp_path / "out").exists() and (tmp_path / "FILE").read_text() == "keep me"


# ---- values the key table rejects, through the real command line, before anything is written ----

@pytest.mark.parametrize("override, needle", [
    ("--config.select.budget=nan", "select.budget"),
    ("--config.teacher.train.epochs=nan", "teacher.train.epochs"),
    ("--config.finetune.kd.temperature=nan", "finetune.kd"),
    ("--config.teacher.options.width=0.0", "teacher.options.width"),
    ("--config.data.train_limit=-5", "data.train_limit"),
    ("--config.teacher.train.log_every_steps=0", "log_every_steps"),
    ("--config.data.eval_batch_size=0", "data.eval_batch_size"),
    ("--config.distill.candidates=()", "distill.candidates is empty"),
    ("--config.teacher.train.momentum=1.5", "teacher.train.momentum"),
    ("--config.seed=-1", "config.seed"),
    ("--config.teacher.options.dropout=1.0", "teacher.options.dropout"),
    ("--config.phases=()", "config.phases is empty"),
    ("--config.teacher.train.learning_rate=inf", "teacher.train.learning_rate"),
    ("--config.baselines.kd.alpha=1.5", "baselines.kd"),
    ("--config.select.metric=energy", "select.metric"),
    ("--config.baselines.match=wall", "baselines.match"),
    ("--config.teacher.train.precision=fp16", "teacher.train.precision")],
    ids=lambda v: v if not v.startswith("--") else v.split("=", 1)[0].removeprefix("--config."))
def test_out_of_range_value(tmp_path, override, needle):
  _assert_one_line_error(_main(tmp_path / "w", override), needle)
  assert not (tmp_path / "w").exists()
