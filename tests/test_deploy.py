"""Deployment (compactkd_jax/deploy): students made of every kind of candidate, exported to LiteRT
and ONNX, give the JAX logits within 1e-4 in the LiteRT interpreter and ONNX Runtime on real
images, as graphs of convolutions (depthwise ones included), not XLA calls or gathers; the trained
teacher's int8 files keep its test accuracy within a point; bad input to the command is one line."""
import json
import os
import sys

import jax
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

from compactkd_jax import artifacts, data
from compactkd_jax.deploy import evaluate, formats, measure, runtimes
from conftest import REPO_ROOT, run_python
from mixed_students import mixed_student
from test_models import _random_variables

SHAPE = (28, 28, 1)
TEACHER = os.path.join(REPO_ROOT, "teachers", "fashion_mnist_resnet20_w0.5")
PRE = artifacts.preprocess_of({"preprocess": {"mean": [0.286], "std": [0.353]}})


def _ops(path: str) -> set[str]:
  if path.endswith(".onnx"):
    import onnx
    return {n.op_type for n in onnx.load(path).graph.node}
  from ai_edge_litert.interpreter import Interpreter
  return {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}


@pytest.mark.parametrize("name,options", [("resnet20", {"shortcut": "A", "width": 0.5}),
                                          ("vgg11", {"classifier": "zoo", "width": 0.25}),
                                          ("mobilenet_v2", {"width": 0.5})],
                         ids=["resnet20-A", "vgg11-zoo", "mobilenet_v2"])
def test_fp32_files_give_the_jax_logits(small_dataset, tmp_path, name, options):
  net = mixed_student(name, SHAPE, **options)
  variables = jax.tree.map(np.asarray, _random_variables(net, SHAPE))
  predict = formats.predict_fn(net, variables, PRE)
  images = small_dataset.test.images[:16]
  expected = np.asarray(jax.jit(predict)(images))
  paths = formats.write(str(tmp_path), predict, SHAPE, small_dataset.validation.images[-32:])
  for key in ("litert_fp32", "onnxruntime_fp32"):
    got = measure.predictions(runtimes.load(paths[key]), images, 1)
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), key
    ops = _ops(paths[key])
    assert not ops & {"Gather", "GatherND", "XlaCallModule", "GATHER", "GATHER_ND",
                      "STABLEHLO_COMPOSITE", "CUSTOM"}, (key, ops)
    assert ops & {"Conv", "CONV_2D"}, (key, ops)
  assert np.ptp(expected, axis=0).min() > 1e-3  # logits depend on the image: the check can fail
  if name == "mobilenet_v2":  # depthwise reaches the runtimes as depthwise convolutions
    assert "DEPTHWISE_CONV_2D" in _ops(paths["litert_fp32"])
    import onnx
    groups = [a.i for n in onnx.load(paths["onnxruntime_fp32"]).graph.node if n.op_type == "Conv"
              for a in n.attribute if a.name == "group"]
    assert max(groups) > 1
  for key in ("litert_int8", "onnxruntime_int8"):  # int8 files load and run
    assert measure.predictions(runtimes.load(paths[key]), images[:2], 1).shape == (2, 10)


def test_trained_teacher_int8_keeps_accuracy(small_dataset, tmp_path):
  net, variables, spec = artifacts.load_model(TEACHER)
  predict = formats.predict_fn(net, variables, artifacts.preprocess_of(spec))
  result = evaluate.deploy(str(tmp_path), predict, SHAPE, small_dataset.validation,
                           runtimes.RUNTIMES, test=small_dataset.test)
  jax_test = float(np.mean(np.concatenate([
      np.asarray(jax.jit(predict)(small_dataset.test.images[i:i + 250])).argmax(-1)
      for i in range(0, 1000, 250)]) == small_dataset.test.labels[:1000]))
  assert jax_test > 0.9
  for runtime in runtimes.RUNTIMES:
    fp32, int8 = result["runtimes"][runtime]["fp32"], result["runtimes"][runtime]["int8"]
    assert abs(fp32["test_accuracy"] - jax_test) <= 0.002, runtime  # a flipped near-tie at most
    assert abs(int8["test_accuracy"] - fp32["test_accuracy"]) <= 0.01, runtime
    assert fp32["latency"]["median_ms"] <= fp32["latency"]["p90_ms"]
  with open(tmp_path / evaluate.RESULT_FILE) as f:
    assert json.load(f)["onnx_opset"] == formats.ONNX_OPSET


def _cli(*flags, env=None):
  return run_python(["-m", "compactkd_jax.deploy", *flags], timeout=300, extra_env=env)


def _one_line_error(proc, needle):
  assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith("error:") and needle in line, proc.stderr[-2000:]


@pytest.mark.parametrize("flags, needle", [
    (["--model", "EMPTY"], "no saved model"),
    (["--model", "WORKDIR"], "this looks like a workdir"),
    (["--model", TEACHER, "--runtimes", "tensorrt"], "unknown runtime 'tensorrt'"),
    (["--model", TEACHER, "--threads", "0"], "--threads must be >= 1")],
    ids=["no_model", "workdir_not_folder", "unknown_runtime", "zero_threads"])
def test_cli_bad_input(tmp_path, flags, needle):
  (tmp_path / "EMPTY").mkdir()
  (tmp_path / "WORKDIR" / "teacher").mkdir(parents=True)
  (tmp_path / "WORKDIR" / "teacher" / "model.json").write_text("{}")
  flags = [str(tmp_path / f) if f in ("EMPTY", "WORKDIR") else f for f in flags]
  _one_line_error(_cli(*flags, "--out", str(tmp_path / "out")), needle)
  assert not (tmp_path / "out").exists()


def test_cli_runtime_not_installed(tmp_path):
  """A runtime whose package cannot be imported: one line naming it and the extra to install."""
  (tmp_path / "sitecustomize.py").write_text(
      "import sys\nclass _Block:\n  def find_spec(self, name, *a):\n"
      "    if name.split('.')[0] == 'ai_edge_litert':\n      raise ImportError(name)\n"
      "sys.meta_path.insert(0, _Block())\n")
  proc = _cli("--model", TEACHER, "--runtimes", "litert", "--out", str(tmp_path / "out"),
              env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
  _one_line_error(proc, "runtime litert needs ai_edge_litert, not installed")
  assert not (tmp_path / "out").exists()
