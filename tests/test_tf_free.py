"""The core needs no TensorFlow: the whole pipeline (every phase, the quickstart config made tiny)
runs with `tensorflow` and `tensorflow_datasets` made unimportable, and still writes TensorBoard
curves (compactkd_jax/tensorboard_writer.py). Only the tfds data source and the LiteRT/ONNX
export import TensorFlow."""
import glob
import os

from tensorboard.backend.event_processing import event_file_loader

from conftest import pipeline_command, run_python

# As if not installed: `import tensorflow` raises ModuleNotFoundError and importlib's find_spec
# (how libraries probe for optional TensorFlow) answers None.
BLOCKER = """import sys
sys.modules['tensorflow'] = None
sys.modules['tensorflow_datasets'] = None
"""


def test_pipeline_runs_without_tensorflow(tmp_path, fmnist_dir):
  (tmp_path / "sitecustomize.py").write_text(BLOCKER)
  workdir = str(tmp_path / "w")
  env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
  probe = run_python(["-c", "import tensorflow"], extra_env=env)
  assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr  # the blocker is active
  proc = run_python(pipeline_command(workdir)[1:], timeout=900, extra_env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(os.path.join(workdir, "results.json"))
  events = glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  assert events
  tags = {v.tag for path in events for e in event_file_loader.EventFileLoader(path).Load()
          for v in e.summary.value}
  assert any(t.startswith("teacher/") for t in tags) and any("finetune" in t for t in tags), tags


def test_tfds_without_tensorflow_is_one_line(tmp_path):
  (tmp_path / "sitecustomize.py").write_text(BLOCKER)
  env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
  proc = run_python(["-m", "compactkd_jax.main", "--config", "configs/quickstart.py", "--workdir",
                     str(tmp_path / "w"), "--config.data.source=tfds", "--config.data.name=cifar10",
                     "--config.teacher.checkpoint=", "--config.report.runtimes=()"], extra_env=env)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert "needs tensorflow-datasets and TensorFlow, which are not installed" in (
      proc.stderr.strip().splitlines()[-1])
  assert not (tmp_path / "w" / "config.json").exists()  # the workdir is not claimed
