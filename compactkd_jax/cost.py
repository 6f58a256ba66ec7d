"""Costs of networks and blocks: XLA FLOPs, paper-convention MACs, parameters, measured latency.

- flops: `jax.jit(f).lower(...).cost_analysis()["flops"]` at batch 1 (2 per multiply-add, in-image
  kernel taps only, elementwise ops included). The lowered analysis, not the compiled one: the
  compiled one is per device and backend-specific. Where the backend analyses no lowered module
  (jax 0.11's GPU plugin), the same module is lowered for the CPU client and counted there; where
  that fails too, twice the jaxpr's MACs (below; within ~15% of XLA's count on our networks).
- macs: the full-kernel multiply-accumulates of every convolution and matmul, read off the jaxpr,
  i.e. what compression papers call "FLOPs" (ResNet-56 on 32x32: 125.5M).
- Depthwise convolutions are counted as convolutions on every backend, though CPUs run them as
  shifted sums (models/layers.py): costs, and so plans, do not depend on the machine.
- params: every trainable parameter (BN scale and bias included; running statistics excluded).

Run `python -m compactkd_jax.cost --model resnet56 --image_shape 32,32,3 --num_classes 10` for a
per-block table and a JSON line of totals.
"""
import functools
import json
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np

from compactkd_jax.models import layers
from compactkd_jax.models.net import BlockNet, LayerSpec


def xla_flops(fn: Callable, *args) -> float:
  with layers.depthwise_as_convolution():  # a fresh function: no trace cached in another form
    analysis = jax.jit(lambda *a: fn(*a)).lower(*args).cost_analysis()
    if analysis is None:
      # jax 0.11's GPU plugin analyses no lowered module (Lowered.cost_analysis is None there):
      # the same module lowered for the CPU client.
      analysis = cpu_lowered_cost_analysis(fn, *args)
  if isinstance(analysis, (list, tuple)):  # older JAX returned one dict per device
    analysis = analysis[0] if analysis else None
  if analysis is None:
    # Neither lowering was analysed (a step constrained to an accelerator mesh cannot be lowered
    # for the CPU): twice the jaxpr's multiply-accumulates, convolutions and matmuls only, which
    # no backend changes. Not the compiled module's count: on a GPU the convolutions are cuDNN
    # custom calls that it leaves out (an H200 run counted 2.43 GFLOP for a ResNet-56 training
    # step of about 133, results/h200_runs.md).
    return 2.0 * jaxpr_macs(fn, *args)
  return float(analysis.get("flops", 0.0))  # no "flops" key: no arithmetic (an identity block)


def cpu_lowered_cost_analysis(fn: Callable, *args) -> dict | None:
  """The lowered module's cost analysis as the CPU client counts it (the count every CPU run
  reports), from abstract arguments placed on the CPU: arrays that live on an accelerator need no
  copy. None where that lowering fails, e.g. for a step that constrains to an accelerator mesh."""
  try:
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    dtype = lambda a: a.dtype if hasattr(a, "dtype") else jnp.result_type(a)
    specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), dtype(a), sharding=cpu), args)
    return jax.jit(lambda *a: fn(*a)).lower(*specs).cost_analysis()
  except Exception:  # any lowering error: the caller falls back to the jaxpr's count
    return None


def jaxpr_macs(fn: Callable, *args) -> int:
  """Conv and matmul multiply-accumulates of fn(*args), summed over the whole (nested) jaxpr."""
  with layers.depthwise_as_convolution():
    return _macs_of(jax.make_jaxpr(lambda *a: fn(*a))(*args).jaxpr)


def _macs_of(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      out = eqn.outvars[0].aval.shape
      rhs = eqn.invars[1].aval.shape
      out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
      total += math.prod(out) * math.prod(rhs) // out_features
    elif name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    for sub in jax_core.jaxprs_in_params(eqn.params):
      total += _macs_of(sub)
  return total


def count_params(variables: Any) -> int:
  params = variables.get("params", {}) if isinstance(variables, dict) else variables["params"]
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def module_costs(module, in_shape: Sequence[int], **call_kwargs) -> dict:
  """flops, macs and params of one Linen module on one input of shape in_shape (no batch dim)."""
  x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(x.shape), **call_kwargs))
  fn = lambda v, x: module.apply(v, x, **call_kwargs)
  return {"flops": xla_flops(fn, variables, x), "macs": jaxpr_macs(fn, variables, x),
          "params": count_params(variables)}


def feature_shapes(net: BlockNet, image_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
  """Per-image output shape of the stem and of every block."""
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)
  _, feats = jax.eval_shape(net.apply, variables, x)
  return {k: tuple(v.shape[1:]) for k, v in feats.items()}


def block_input_shapes(net: BlockNet, image_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
  """Shape entering each block, plus the head's input under the head's name."""
  shapes = feature_shapes(net, image_shape)
  order = [net.stem.name, *net.block_names]
  ins = {b: shapes[prev] for prev, b in zip(order, net.block_names)}
  ins[net.head.name] = shapes[order[-1]]
  return ins


def spec_costs(spec: LayerSpec, in_shape: Sequence[int]) -> dict:
  """flops, macs and params of one layer spec, computed once per (kind, options, shape) in a
  process: the teacher's blocks are also every menu's `keep`, and a stage's blocks differ only in
  their names (ResNet-56: 27 blocks, 5 distinct: each stage's first block differs)."""
  return dict(_spec_costs(_unnamed(spec), tuple(in_shape)))


@functools.lru_cache(maxsize=4096)
def _spec_costs(spec: LayerSpec, in_shape: tuple[int, ...]) -> tuple:
  module, x, variables = _abstract(spec, in_shape)
  macs, params = spec_macs_params(spec, in_shape)
  return (("flops", xla_flops(module.apply, variables, x)), ("macs", macs), ("params", params))


@functools.lru_cache(maxsize=4096)
def _spec_macs_params(spec: LayerSpec, in_shape: tuple[int, ...]) -> tuple[int, int]:
  module, x, variables = _abstract(spec, in_shape)
  return jaxpr_macs(module.apply, variables, x), count_params(variables)


def spec_macs_params(spec: LayerSpec, in_shape: Sequence[int]) -> tuple[int, int]:
  """MACs (jaxpr, no lowering) and parameters of one layer spec, computed once per (kind,
  options, shape) in a process: the menu's dominance filter and the scoring both read them."""
  return _spec_macs_params(_unnamed(spec), tuple(in_shape))


def _unnamed(spec: LayerSpec) -> LayerSpec:
  """The spec without its name, which changes no cost: the caches' key."""
  return LayerSpec(spec.kind, "part", spec.options)


def _abstract(spec: LayerSpec, in_shape: tuple[int, ...]):
  module = spec.build()
  x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)
  return module, x, jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(x.shape)))


def network_costs(net: BlockNet, image_shape: Sequence[int]) -> dict:
  """Costs of stem, every block and head, and the whole network measured in one piece."""
  ins = block_input_shapes(net, image_shape)
  parts = {net.stem.name: spec_costs(net.stem, image_shape)}
  parts.update({b.name: spec_costs(b, ins[b.name]) for b in net.blocks})
  parts[net.head.name] = spec_costs(net.head, ins[net.head.name])
  return {"parts": parts, "total": module_costs(net, image_shape)}


def measure_latency(apply_fn: Callable, variables: Any, image_shape: Sequence[int],
                    batch_size: int, repeats: int = 20, min_seconds: float = 0.5) -> dict:
  """Median wall time of one jit-compiled forward pass at batch_size on one local device, after
  compile and warm-up (variables replicated over a mesh are copied to that device first)."""
  fn = jax.jit(apply_fn)
  device = jax.local_devices()[0]
  variables = jax.device_put(jax.device_get(variables), device)
  x = jax.device_put(jnp.zeros((batch_size, *image_shape), jnp.float32), device)
  jax.block_until_ready(fn(variables, x))
  times, start = [], time.perf_counter()
  while len(times) < repeats or time.perf_counter() - start < min_seconds:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(variables, x))
    times.append(time.perf_counter() - t0)
    if len(times) >= 10 * repeats:
      break
  seconds = float(np.median(times))
  return {"batch_size": batch_size, "seconds": seconds, "images_per_second": batch_size / seconds}


def format_table(rows: list[dict], columns: Sequence[str]) -> str:
  """A GitHub-markdown table; numbers get thousands separators."""
  fmt = lambda v: f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 100 else (
      f"{v:.4g}" if isinstance(v, float) else str(v))
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
  return "\n".join(lines)


def main(argv=None):
  import argparse
  from compactkd_jax.errors import UserError
  from compactkd_jax.models import get_model, zoo
  p = argparse.ArgumentParser(description="Per-block FLOPs, MACs and parameters of a zoo model.")
  p.add_argument("--model", required=True)
  p.add_argument("--image_shape", default="32,32,3")
  p.add_argument("--num_classes", type=int, default=10)
  zoo.add_option_flags(p)
  args = p.parse_args(argv)
  try:
    shape, options = zoo.checked_flags(args)
    net = get_model(args.model, args.num_classes, **options)
  except UserError as e:
    raise SystemExit(f"error: {e}")
  costs = network_costs(net, shape)
  rows = [{"part": k, **v} for k, v in costs["parts"].items()]
  print(format_table(rows, ["part", "flops", "macs", "params"]))
  print(json.dumps({"model": args.model, **costs["total"]}))


if __name__ == "__main__":
  main()
