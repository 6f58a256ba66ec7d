"""Every committed teacher (teachers/*/) loads with this checkout's JAX and orbax, wherever it was
trained (the full-width ResNet-56 on an H200 under jax 0.11), and its README's validation accuracy
is what evaluating it here gives: the claim is checked against the checkpoint, not copied."""
import glob
import json
import os
import re

import pytest

from conftest import REPO_ROOT, run_python

TEACHERS = sorted(glob.glob(os.path.join(REPO_ROOT, "teachers", "*", "model.json")))


def _claimed_validation_accuracy(teacher_dir: str) -> float:
  readme = open(os.path.join(teacher_dir, "README.md")).read()
  return float(re.search(r"\*\*Validation accuracy ([0-9.]+)%", readme).group(1))


def test_the_committed_teachers_are_found():
  assert len(TEACHERS) >= 3


@pytest.mark.parametrize("model_json", TEACHERS,
                         ids=[os.path.basename(os.path.dirname(p)) for p in TEACHERS])
def test_committed_teacher_reproduces_its_validation_accuracy(model_json, fmnist_dir, tmp_path):
  teacher_dir = os.path.dirname(model_json)
  spec = json.load(open(model_json))
  args = ["-m", "compactkd_jax.main", "--config", "configs/quickstart.py",
          "--workdir", str(tmp_path / "run"), f"--config.data.data_dir={fmnist_dir}",
          f"--config.teacher.model={spec['model']}",
          f"--config.teacher.options.width={spec['options']['width']}",
          f"--config.teacher.checkpoint={teacher_dir}", "--config.phases=('teacher',)",
          "--config.data.test_limit=1000"]  # the test split is not what is checked
  proc = run_python(args, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.load(open(tmp_path / "run" / "teacher" / "result.json"))
  # 5,000 validation images: 0.1 point is 5 images, what another backend's arithmetic may flip.
  assert abs(100 * result["val_accuracy"] - _claimed_validation_accuracy(teacher_dir)) <= 0.1
