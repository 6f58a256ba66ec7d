"""Shared fixtures: the real Fashion-MNIST IDX files, a small real dataset, tiny run configs.

Everything here is real data (the Debian package's IDX files); tests that need it are skipped when
the package is not installed. Configs are narrow and short so each test runs in seconds on a 2-core
CPU.
"""
import json
import os
import subprocess
import sys

import pytest

from compactkd_jax import config as config_lib
from compactkd_jax import data

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Sizes of the small dataset every in-process test shares (first N examples of the real splits).
SMALL_TRAIN_LIMIT = 4000
SMALL_VALIDATION_SIZE = 500
SMALL_TEST_LIMIT = 1000


def _have_idx(directory: str) -> bool:
  return all(os.path.exists(os.path.join(directory, stem)) or
             os.path.exists(os.path.join(directory, stem + ".gz"))
             for stems in data.IDX_FILES.values() for stem in stems)


@pytest.fixture(scope="session")
def fmnist_dir() -> str:
  """The default Fashion-MNIST IDX directory; skips the test when the dataset is not installed."""
  if not _have_idx(data.DEFAULT_IDX_DIR):
    pytest.skip(f"Fashion-MNIST IDX files not found in {data.DEFAULT_IDX_DIR} "
                "(install dataset-fashion-mnist)")
  return data.DEFAULT_IDX_DIR


def small_data_config(train_limit: int = SMALL_TRAIN_LIMIT,
                      validation_size: int = SMALL_VALIDATION_SIZE,
                      test_limit: int = SMALL_TEST_LIMIT):
  """The default `data` section restricted to the first examples of each split."""
  cfg = config_lib.default_config().data
  cfg.train_limit = train_limit
  cfg.validation_size = validation_size
  cfg.test_limit = test_limit
  return cfg


@pytest.fixture(scope="session")
def small_dataset(fmnist_dir) -> data.Dataset:
  """A small real Fashion-MNIST `Dataset` (3500 train / 500 validation / 1000 test)."""
  cfg = small_data_config()
  cfg.data_dir = fmnist_dir
  return data.load_dataset(cfg)


def make_tiny_config(train_limit: int = 2000, validation_size: int = 500, test_limit: int = 500,
                     width: float = 0.25, steps: int = 20, batch_size: int = 32,
                     learning_rate: float = 0.05, augment: bool = False):
  """A full config for short pipeline runs: narrow ResNet-20 teacher, few steps, small splits."""
  cfg = config_lib.default_config()
  cfg.phases = ("teacher",)
  cfg.data.train_limit = train_limit
  cfg.data.validation_size = validation_size
  cfg.data.test_limit = test_limit
  cfg.data.eval_batch_size = 250
  if not augment:
    cfg.data.crop_padding = 0
    cfg.data.flip = False
  cfg.teacher.model = "resnet20"
  cfg.teacher.options.width = width
  # Fixed baseline steps: matching on measured wall time would make two runs differ.
  cfg.baselines.match = "epochs"
  t = cfg.teacher.train
  t.steps = steps
  t.batch_size = batch_size
  t.learning_rate = learning_rate
  t.log_every_steps = max(1, steps // 4)
  t.checkpoint_every_steps = steps
  return cfg


@pytest.fixture
def tiny_config(fmnist_dir):
  """Factory for tiny run configs (see `make_tiny_config`); requires the real dataset."""
  return make_tiny_config


def run_python(args, timeout: float = 300, extra_env=None, **kwargs) -> subprocess.CompletedProcess:
  """Runs `python <args>` with this interpreter from the repository root, capturing text output."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(extra_env or {}))
  return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=timeout, env=env, **kwargs)


# A whole-pipeline run through the CLI (configs/quickstart.py made tiny): about a minute.
TINY_PIPELINE_OVERRIDES = [
    "--config.teacher.options.width=0.25", "--config.data.train_limit=2000",
    "--config.data.validation_size=300", "--config.data.test_limit=300",
    "--config.data.eval_batch_size=100", "--config.distill.score_examples=300",
    "--config.distill.candidates=('keep', 'slim_0.25', 'slim_0.5', 'skip')",
    "--config.report.throughput_batch_size=32", "--config.baselines.match=epochs",
    "--config.teacher.checkpoint=", "--config.select.metric=flops",  # a tiny teacher, trained
    "--config.report.runtimes=()",  # deployment has its own tests (test_deploy, test_pipeline)
    *[f"--config.{section}.train.{key}={value}"
      for section, steps in (("teacher", 30), ("distill", 40), ("refine", 4), ("finetune", 40),
                             ("baselines", 10))
      for key, value in (("steps", steps), ("batch_size", 32), ("log_every_steps", 10),
                         ("checkpoint_every_steps", 10))]]


def pipeline_command(workdir: str, *extra: str) -> list[str]:
  return [sys.executable, "-m", "compactkd_jax.main", "--config",
          os.path.join("configs", "quickstart.py"), "--workdir", workdir, *TINY_PIPELINE_OVERRIDES,
          *extra]


def pipeline_outcome(workdir: str):
  """(plan, {row: (test accuracy, validation accuracy)}, {parameter: array}) of a finished run."""
  import jax
  import numpy as np
  from compactkd_jax import artifacts
  with open(os.path.join(workdir, "select", "plan.json")) as f:
    plan = json.load(f)
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  rows = {"teacher": res["teacher"], "student": res["student"], **res["baselines"]}
  params = {}
  for name in ("teacher", "finetune", "baseline_scratch", "baseline_kd"):
    _, variables, _ = artifacts.load_model(os.path.join(workdir, name))
    params.update({f"{name}{jax.tree_util.keystr(k)}": np.asarray(v) for k, v in
                   jax.tree_util.tree_leaves_with_path(variables)})
  return (plan["choice"], {k: (r["accuracy"], r["val_accuracy"]) for k, r in rows.items()},
          params)


def assert_identical_outcomes(a, b) -> None:
  import numpy as np
  assert a[0] == b[0]  # the plan
  assert a[1] == b[1]  # every accuracy, exactly
  assert a[2].keys() == b[2].keys()
  for k in a[2]:  # parameters, bit for bit
    np.testing.assert_array_equal(a[2][k], b[2][k], err_msg=k)
