"""A trained network as deployable files, from its JAX function `uint8 images -> logits`.

Route (measured, see the deploy tests): jax2tf -> TensorFlow's LiteRT converter -> `.tflite`
(fp32; int8 by full-integer post-training quantization calibrated on validation images), then
tf2onnx reads that `.tflite` -> `.onnx` (opset ONNX_OPSET), and ONNX Runtime's static quantizer
makes the int8 `.onnx` (QDQ, per-channel). Going through the LiteRT converter gives fused graphs
(Conv with folded BN and ReLU, Gemm) rather than TF's XlaCallModule, which tf2onnx cannot read.

Files are exported at a fixed batch size: with a symbolic batch the converter keeps BN unfolded and
tf2onnx emits shape arithmetic around every op. The deployed file is batch 1; throughput is
measured on a batch-N copy. Depthwise convolutions are exported as convolutions (never the CPU's
shifted-sum form), so runtimes see DEPTHWISE_CONV_2D / grouped Conv.
"""
import os
import tempfile
from typing import Callable

import jax
import numpy as np

from compactkd_jax import files
from compactkd_jax.errors import UserError
from compactkd_jax.models import layers

ONNX_OPSET = 17
FILES = {("litert", "fp32"): "model.tflite", ("litert", "int8"): "model_int8.tflite",
         ("onnxruntime", "fp32"): "model.onnx", ("onnxruntime", "int8"): "model_int8.onnx"}
PRECISIONS = ("fp32", "int8")


def predict_fn(net, variables, preprocess) -> Callable:
  """uint8 NHWC images -> logits, normalization inside, depthwise in convolution form."""
  host = jax.device_get(variables)

  def predict(images):
    with layers.depthwise_as_convolution():  # read while tracing: the exported graph keeps it
      return net.apply(host, preprocess(images))[0]
  return predict


def to_tflite(predict: Callable, image_shape, batch: int, calibration=None,
              dtype: str = "uint8") -> bytes:
  """The LiteRT flatbuffer of `predict` at a fixed batch; full-integer int8 (uint8 images in,
  float logits out) when calibration images are given. `dtype`: the input's (float32 for parts
  of a network, e.g. one block of the latency table)."""
  import tensorflow as tf
  from jax.experimental import jax2tf
  fn = tf.function(jax2tf.convert(predict, with_gradient=False), autograph=False,
                   input_signature=[tf.TensorSpec((batch, *image_shape), tf.as_dtype(dtype))])
  converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
  if calibration is not None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [calibration[i:i + batch]] for i in range(0, len(calibration) - batch + 1, batch))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  try:
    return converter.convert()
  except Exception as e:  # the converter raises ConverterError with pages of MLIR
    raise UserError(f"the LiteRT converter failed: {str(e).splitlines()[0][:300]}") from None


def tflite_to_onnx(tflite_path: str, onnx_path: str) -> None:
  import tf2onnx
  tmp = onnx_path + ".tmp"
  tf2onnx.convert.from_tflite(tflite_path, opset=ONNX_OPSET, output_path=tmp)
  os.replace(tmp, onnx_path)


def quantize_onnx(fp32_path: str, int8_path: str, calibration: np.ndarray, batch: int) -> None:
  """ONNX Runtime's static quantization (QDQ, per-channel int8 weights, uint8 activations: the
  U8S8 form its x86 kernels run fastest)."""
  import onnx
  from onnxruntime import quantization as oq
  name = onnx.load(fp32_path).graph.input[0].name
  batches = iter([{name: calibration[i:i + batch]}
                  for i in range(0, len(calibration) - batch + 1, batch)])

  class Reader(oq.CalibrationDataReader):
    def get_next(self):
      return next(batches, None)
  with tempfile.TemporaryDirectory() as tmp:
    prepared = os.path.join(tmp, "prepared.onnx")
    oq.quant_pre_process(fp32_path, prepared)
    oq.quantize_static(prepared, int8_path + ".tmp", Reader(), quant_format=oq.QuantFormat.QDQ,
                       per_channel=True, activation_type=oq.QuantType.QUInt8,
                       weight_type=oq.QuantType.QInt8)
  os.replace(int8_path + ".tmp", int8_path)


def write(directory: str, predict: Callable, image_shape, calibration: np.ndarray,
          runtimes=("onnxruntime", "litert"), batch: int = 1) -> dict:
  """Writes the files of `runtimes` (fp32 and int8) into `directory`; returns
  {"<runtime>_<precision>": path}. ONNX is made from the fp32 .tflite, which is always written."""
  os.makedirs(directory, exist_ok=True)
  path = lambda runtime, precision: os.path.join(directory, FILES[(runtime, precision)])
  files.write_bytes(path("litert", "fp32"), to_tflite(predict, image_shape, batch))
  out = {}
  if "litert" in runtimes:
    files.write_bytes(path("litert", "int8"), to_tflite(predict, image_shape, batch, calibration))
    out.update(litert_fp32=path("litert", "fp32"), litert_int8=path("litert", "int8"))
  if "onnxruntime" in runtimes:
    tflite_to_onnx(path("litert", "fp32"), path("onnxruntime", "fp32"))
    quantize_onnx(path("onnxruntime", "fp32"), path("onnxruntime", "int8"), calibration, batch)
    out.update(onnxruntime_fp32=path("onnxruntime", "fp32"),
               onnxruntime_int8=path("onnxruntime", "int8"))
  return out
