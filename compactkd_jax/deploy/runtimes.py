"""Deployed files loaded in their runtimes (ONNX Runtime, the LiteRT interpreter) as plain
`run(uint8 images) -> float logits` callables, on a stated number of threads."""
import importlib
from typing import Callable

import numpy as np

from compactkd_jax.errors import UserError

RUNTIMES = ("onnxruntime", "litert")
# What each runtime needs (import names): the runtime and the converters that make its files.
PACKAGES = {"onnxruntime": ("onnxruntime", "onnx", "tf2onnx"), "litert": ("ai_edge_litert",)}


def require(runtimes) -> None:
  """One line for an unknown runtime or one whose packages are not installed."""
  for runtime in runtimes:
    if runtime not in RUNTIMES:
      raise UserError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    missing = [m for m in PACKAGES[runtime] if not _importable(m)]
    if missing:
      raise UserError(f"runtime {runtime} needs {', '.join(missing)}, not installed; install the "
                      "deploy extra: pip install -e '.[deploy]' (scripts/setup.sh does)")


def _importable(module: str) -> bool:
  try:
    importlib.import_module(module)
    return True
  except ImportError:
    return False


def load(path: str, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
  if path.endswith(".onnx"):
    return _onnxruntime(path, threads)
  if path.endswith(".tflite"):
    return _litert(path, threads)
  raise UserError(f"{path} is neither .onnx nor .tflite")


def _onnxruntime(path: str, threads: int):
  import onnxruntime as ort
  options = ort.SessionOptions()
  options.intra_op_num_threads = threads
  options.inter_op_num_threads = 1
  session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
  name = session.get_inputs()[0].name
  return lambda images: session.run(None, {name: images})[0]


def _litert(path: str, threads: int):
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path, num_threads=threads)  # XNNPACK delegate by default
  interpreter.allocate_tensors()
  inp = interpreter.get_input_details()[0]["index"]
  out = interpreter.get_output_details()[0]

  def run(images):
    interpreter.set_tensor(inp, images)
    interpreter.invoke()
    logits = interpreter.get_tensor(out["index"])
    scale, zero = out["quantization"]
    return (logits.astype(np.float32) - zero) * scale if scale else logits.copy()
  return run


def versions() -> dict:
  """The converter and runtime versions, for the record."""
  out = {}
  for name in ("tensorflow", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert"):
    try:
      out[name] = __import__(name).__version__
    except (ImportError, AttributeError):
      out[name] = None
  return out
