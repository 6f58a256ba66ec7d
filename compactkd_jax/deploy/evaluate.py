"""Deploy one network and measure it there: write its files (formats.py), check each right after
it is written (fp32 logits equal JAX's; int8 validation accuracy within a point of fp32), then time
it on each runtime (batch-1 latency, batch-N throughput) and, for the report, its test accuracy.
Used by `python -m compactkd_jax.deploy` and by the report."""
import os
import tempfile

import jax
import numpy as np
from absl import logging

from compactkd_jax import files
from compactkd_jax.deploy import formats, measure, runtimes as rt

RESULT_FILE = "deploy.json"
CALIBRATION_IMAGES = 256   # the last validation images: int8 calibration
CHECK_IMAGES = 1000        # the first validation images: the checks (disjoint from calibration)
LOGIT_IMAGES = 100         # of which the fp32 logit comparison uses these
FP32_TOLERANCE = 1e-4      # largest |runtime - JAX| logit difference, times max(1, |logits|)
INT8_POINTS = 1.0          # largest validation accuracy drop of int8, in points


def deploy(directory: str, predict, image_shape, validation, runtimes, threads: int = 1,
           test=None, throughput_batch: int = 0) -> dict:
  """Writes and checks the files of `runtimes` in `directory`, measures them; returns (and writes
  to `directory`/deploy.json) what was measured."""
  rt.require(runtimes)
  calibration = validation.images[-CALIBRATION_IMAGES:]
  check = validation.take(CHECK_IMAGES)
  paths = formats.write(directory, predict, image_shape, calibration, runtimes)
  jitted = jax.jit(predict)
  reference = np.concatenate([np.asarray(jitted(check.images[i:i + LOGIT_IMAGES]))
                              for i in range(0, len(check) // LOGIT_IMAGES * LOGIT_IMAGES,
                                             LOGIT_IMAGES)] or [np.zeros((0, 1))])
  result = {"files": {k: os.path.basename(p) for k, p in paths.items()},
            "onnx_opset": formats.ONNX_OPSET, "threads": threads, "versions": rt.versions(),
            "jax_val_accuracy": float(np.mean(reference.argmax(-1) ==
                                              check.labels[:len(reference)])),
            "check_images": len(check), "runtimes": {}}
  for key, path in paths.items():
    runtime, precision = key.rsplit("_", 1)
    run = rt.load(path, threads)
    entry = _check(run, path, precision, check, reference)
    entry["latency"] = measure.latency(run, check.images[:1])
    if test is not None:
      entry["test_accuracy"] = measure.accuracy(run, test.images, test.labels, 1)
    result["runtimes"].setdefault(runtime, {})[precision] = entry
  for runtime, entries in result["runtimes"].items():
    drop = 100 * (entries["fp32"]["val_accuracy"] - entries["int8"]["val_accuracy"])
    entries["int8"].update(drop_points=drop, within_tolerance=bool(drop <= INT8_POINTS))
    if drop > INT8_POINTS:
      logging.warning("%s int8 loses %.2f points of validation accuracy (> %.1f)", runtime, drop,
                      INT8_POINTS)
  if throughput_batch:
    _throughput(result, predict, image_shape, validation, runtimes, threads, throughput_batch)
  files.write_json(os.path.join(directory, RESULT_FILE), result)
  return result


def _check(run, path: str, precision: str, check, reference: np.ndarray) -> dict:
  """fp32: logits within the tolerance of JAX's (else the export is wrong: an error naming the
  file); both: validation accuracy on the check images."""
  entry = {"val_accuracy": measure.accuracy(run, check.images, check.labels, 1)}
  if precision == "fp32" and len(reference):
    got = measure.predictions(run, check.images[:len(reference)], 1)
    diff = float(np.abs(got - reference).max())
    tolerance = FP32_TOLERANCE * max(1.0, float(np.abs(reference).max()))
    if diff > tolerance:
      raise RuntimeError(f"{path}: fp32 logits differ from the JAX model's by {diff:.2e} "
                         f"(> {tolerance:.1e}) on validation images")
    entry["max_abs_diff"] = diff
  return entry


def _throughput(result, predict, image_shape, validation, runtimes, threads, batch) -> None:
  """Images/s at `batch`, on a batch-`batch` copy of every file (exported like the deployed one,
  into a temporary folder)."""
  images = validation.images[-max(batch, CALIBRATION_IMAGES):]
  with tempfile.TemporaryDirectory() as tmp:
    paths = formats.write(tmp, predict, image_shape, images, runtimes, batch=batch)
    for key, path in paths.items():
      runtime, precision = key.rsplit("_", 1)
      run = rt.load(path, threads)
      result["runtimes"][runtime][precision]["throughput"] = measure.throughput(
          run, np.ascontiguousarray(images[:batch]), warmup=3, max_runs=30)
  result["throughput_batch"] = batch
