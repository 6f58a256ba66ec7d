"""Latency as a cost (select.metric = "latency", or a latency limit in select.constraints): a
lookup table of what each part of the network costs on a runtime, as in ProxylessNAS and FBNet.

Every candidate of every block, and the teacher's stem and head, is exported alone at its place's
input shape (batch 1, fp32, its real position in the network: resolution and channels) and timed
on the runtime. A runtime call has a fixed cost that a whole network pays once, not once per
block: each part's time has the time of a one-op model at the same input shape subtracted, and
the network's total adds one call at the image shape. A network's predicted latency is then the
sum over its parts; the report sets the student's measured latency beside it.

The table is cached in the workdir (`latency/<runtime>_threads<n>.json`), keyed by each part's
spec and input shape: a sweep measures once, and a resumed run does not measure again.
"""
import copy
import hashlib
import json
import os
import tempfile

import jax
import numpy as np
from absl import logging

from compactkd_jax import cost, files
from compactkd_jax.deploy import formats, measure, runtimes as rt
from compactkd_jax.models import layers
from compactkd_jax.models.net import BlockNet, LayerSpec

LATENCY = "latency"  # the metric's name in scores.json and plans (milliseconds)
_MAX_SECONDS = 0.5   # timing per part (median of the runs it holds, at least 20)


def cache_path(root: str, runtime: str, threads: int) -> str:
  return os.path.join(root, "latency", f"{runtime}_threads{threads}.json")


def _random_variables(module, in_shape, seed: int = 0) -> dict:
  """Variables of the right shapes (latency does not depend on the values): He-scaled kernels,
  positive BN variances. NumPy, not module.init: no compile per part."""
  abstract = jax.eval_shape(module.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, *in_shape), np.float32))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['var']") or name.endswith("['scale']"):
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    fan_in = max(1, int(np.prod(leaf.shape[:-1])))
    return (rng.normal(0, np.sqrt(2 / fan_in), leaf.shape)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(fill, abstract)


def _time(fn, in_shape, runtime: str, threads: int, dtype: str = "float32") -> float:
  """Median milliseconds of `fn` exported alone (fp32, batch 1) and run on `runtime`."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "part.tflite")
    files.write_bytes(path, formats.to_tflite(fn, in_shape, 1, dtype=dtype))
    if runtime == "onnxruntime":
      formats.tflite_to_onnx(path, os.path.join(tmp, "part.onnx"))
      path = os.path.join(tmp, "part.onnx")
    run = rt.load(path, threads)
    x = (np.random.default_rng(0).integers(0, 256, (1, *in_shape)) if dtype == "uint8" else
         np.random.default_rng(0).normal(size=(1, *in_shape))).astype(dtype)
    return measure.latency(run, x, max_seconds=_MAX_SECONDS)["median_ms"]


def _part_fn(spec: LayerSpec, variables):
  module = spec.build()

  def fn(x):
    with layers.depthwise_as_convolution():
      return module.apply(variables, x, False)
  return fn


def _key(spec: LayerSpec, in_shape) -> str:
  text = json.dumps([spec.to_json(), list(in_shape)], sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(net: BlockNet, variables: dict, scores: dict, image_shape, runtime: str, threads: int,
          path: str) -> dict:
  """The table for the teacher `net`'s stem and head and every candidate in `scores`: loaded from
  `path` where its entries match, measured (and saved) where they do not."""
  rt.require([runtime])
  cached = files.read_json(path, fix="delete it to measure again") if os.path.exists(path) else {}
  same = cached.get("runtime") == runtime
  parts, calls = (cached.get("parts", {}), cached.get("calls", {})) if same else ({}, {})
  ins = cost.block_input_shapes(net, image_shape)
  host = jax.device_get(variables)

  def call_ms(shape) -> float:  # one runtime call of a one-op model at this input shape
    key = "x".join(map(str, shape))
    if key not in calls:
      calls[key] = _time(lambda x: x * 1.5, shape, runtime, threads)
    return calls[key]

  def part_ms(spec: LayerSpec, in_shape, part_vars) -> float:
    key = _key(spec, in_shape)
    if key not in parts:
      part_vars = part_vars if part_vars is not None else _random_variables(spec.build(), in_shape)
      parts[key] = max(0.0, _time(_part_fn(spec, part_vars), in_shape, runtime, threads)
                       - call_ms(in_shape))
    return parts[key]

  def sub(name):
    return {c: host[c][name] for c in host if name in host[c]}
  table = {"runtime": runtime, "threads": threads, "unit": "ms",
           "call": call_ms(image_shape),
           "stem": part_ms(net.stem, image_shape, sub(net.stem.name)),
           "head": part_ms(net.head, ins[net.head.name], sub(net.head.name)), "blocks": {}}
  for block in scores["block_order"]:
    table["blocks"][block] = {}
    for name, entry in scores["blocks"][block].items():
      table["blocks"][block][name] = part_ms(LayerSpec.from_json(entry["spec"]), ins[block],
                                             None)
    logging.info("latency table (%s): %s %s", runtime, block,
                 {k: round(v, 4) for k, v in table["blocks"][block].items()})
  files.write_json(path, {**table, "parts": parts, "calls": calls})
  return table


def annotate(scores: dict, table: dict) -> dict:
  """A copy of `scores` with a `latency` cost (ms) wherever it has flops/macs/params: every
  candidate, the teacher's blocks, stem (plus the one runtime call), head and total."""
  out = copy.deepcopy(scores)
  teacher = out["teacher"]
  teacher["stem"][LATENCY] = table["stem"] + table["call"]
  teacher["head"][LATENCY] = table["head"]
  for block, menu in table["blocks"].items():
    for name, ms in menu.items():
      out["blocks"][block][name][LATENCY] = ms
    teacher["blocks"][block][LATENCY] = menu["keep"]
  teacher["total"][LATENCY] = (teacher["stem"][LATENCY] + teacher["head"][LATENCY]
                               + sum(m["keep"] for m in table["blocks"].values()))
  return out


def measure_network(net: BlockNet, preprocess, image_shape, runtime: str, threads: int) -> float:
  """Median milliseconds of the whole network as deployed (uint8 images in, normalization
  inside, fp32, batch 1) on `runtime`; random weights: latency does not depend on their values."""
  variables = _random_variables(net, image_shape)
  return _time(formats.predict_fn(net, variables, preprocess), image_shape, runtime, threads,
               dtype="uint8")


def predict(table: dict, choice: dict) -> float:
  """The table's latency (ms) of the network that takes `choice[block]` in every block."""
  return (table["call"] + table["stem"] + table["head"]
          + sum(table["blocks"][b][c] for b, c in choice.items()))
