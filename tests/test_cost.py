"""Tests for compactkd_jax.cost against published parameter / MAC counts and hand formulas."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from compactkd_jax import cost
from compactkd_jax.models import get_model

from conftest import run_python

CIFAR_SHAPE = (32, 32, 3)

# Published figures on 32x32x3, 10 classes: (model, options, params in M, MACs in M), the numbers
# the CIFAR compression literature quotes (docs/design.md, "Costs"): ResNet-20/56/110 with option-A
# shortcuts, VGG-16-BN with one dense layer, MobileNetV2 for CIFAR; plus ResNet-56 with option-B
# shortcuts and VGG-16-BN with the 512-512 "zoo" classifier.
PUBLISHED = [
    ("resnet20", {}, 0.27, 40.6),
    ("resnet56", {}, 0.85, 125.5),
    ("resnet110", {}, 1.73, 252.9),
    ("vgg16", {}, 14.73, 313.2),
    ("mobilenet_v2", {}, 2.24, 88.0),
    ("resnet56", {"shortcut": "B"}, 0.86, 125.75),
    ("vgg16", {"classifier": "zoo"}, 15.25, 313.73),
]


@pytest.fixture(scope="module")
def costs_cache():
  return {}


def _network_costs(cache, name, options):
  key = (name, tuple(sorted(options.items())))
  if key not in cache:
    cache[key] = cost.network_costs(get_model(name, 10, **options), CIFAR_SHAPE)
  return cache[key]


@pytest.mark.parametrize("name,options,params_m,macs_m", PUBLISHED,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}"
                              for n, o, _, _ in PUBLISHED])
def test_total_costs_match_published(costs_cache, name, options, params_m, macs_m):
  total = _network_costs(costs_cache, name, options)["total"]
  assert total["params"] == pytest.approx(params_m * 1e6, rel=0.01)
  assert total["macs"] == pytest.approx(macs_m * 1e6, rel=0.01)
  # XLA counts 2 per multiply-add but only in-image taps (less at borders), plus elementwise ops.
  assert 1.5 * total["macs"] <= total["flops"] <= 2.2 * total["macs"]


@pytest.mark.parametrize("name,options", [("resnet20", {}), ("vgg16", {}), ("mobilenet_v2", {}),
                                          ("resnet56", {"shortcut": "B"})])
def test_parts_sum_to_total(costs_cache, name, options):
  net = get_model(name, 10, **options)
  costs = _network_costs(costs_cache, name, options)
  parts = costs["parts"]
  assert list(parts) == [net.stem.name, *net.block_names, net.head.name]
  for key in ("flops", "macs", "params"):
    assert sum(p[key] for p in parts.values()) == pytest.approx(costs["total"][key], rel=0.01)


@pytest.mark.parametrize("in_shape,features,kernel,stride,groups", [
    ((32, 32, 3), 16, 3, 1, 1),
    ((32, 32, 16), 32, 3, 2, 1),
    ((15, 15, 8), 8, 3, 2, 8),  # depthwise, odd input
    ((8, 8, 24), 40, 1, 1, 1),
    ((9, 9, 6), 12, 5, 2, 3),  # grouped
])
def test_jaxpr_macs_of_conv_matches_formula(in_shape, features, kernel, stride, groups):
  h, w, c = in_shape
  pad = kernel // 2
  module = nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), feature_group_count=groups, use_bias=False)
  x = jnp.zeros((1, *in_shape))
  variables = module.init(jax.random.key(0), x)
  out_h = (h + 2 * pad - kernel) // stride + 1
  out_w = (w + 2 * pad - kernel) // stride + 1
  expected = out_h * out_w * features * kernel * kernel * (c // groups)
  assert cost.jaxpr_macs(module.apply, variables, x) == expected


@pytest.mark.parametrize("batch,in_features,out_features", [(1, 64, 10), (4, 512, 100)])
def test_jaxpr_macs_of_dense_matches_formula(batch, in_features, out_features):
  module = nn.Dense(out_features)
  x = jnp.zeros((batch, in_features))
  variables = module.init(jax.random.key(0), x)
  assert cost.jaxpr_macs(module.apply, variables, x) == batch * in_features * out_features
  assert cost.count_params(variables) == in_features * out_features + out_features


@pytest.mark.parametrize("in_shape,kernel,stride", [((15, 15, 8), 3, 2), ((8, 8, 6), 3, 1),
                                                    ((9, 9, 4), 5, 2)])
def test_depthwise_costs_are_those_of_the_grouped_convolution(in_shape, kernel, stride):
  """layers.DepthwiseConv runs as shifted sums on this CPU, yet costs as Flax's grouped nn.Conv:
  the same XLA FLOPs and MACs, and the formula's MACs."""
  from compactkd_jax.models import layers
  pad = kernel // 2
  grouped = nn.Conv(in_shape[-1], (kernel, kernel), strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)), feature_group_count=in_shape[-1],
                    use_bias=False)
  ours = cost.module_costs(layers.DepthwiseConv(kernel, stride), in_shape)
  reference = cost.module_costs(grouped, in_shape)
  assert ours == reference
  out = (in_shape[0] + 2 * pad - kernel) // stride + 1
  assert ours["macs"] == out * out * in_shape[-1] * kernel * kernel


def test_jaxpr_macs_counts_nested_jaxprs():
  module = nn.Dense(7)
  x = jnp.zeros((2, 5))
  variables = module.init(jax.random.key(0), x)
  nested = jax.jit(lambda v, x: jax.checkpoint(module.apply)(v, x))
  assert cost.jaxpr_macs(nested, variables, x) == 2 * 5 * 7


def _gradient_step_and_args():
  net = get_model("resnet20", 10, width=0.25)
  x = jnp.zeros((4, 28, 28, 1))
  variables = net.init(jax.random.key(0), x, train=False)

  def step(variables, x, key):
    noise = jax.random.normal(key, x.shape)
    loss = lambda p: sum(o.sum() for o in jax.tree.leaves(
        net.apply({**variables, "params": p}, x + noise, train=False)))
    return jax.grad(loss)(variables["params"])

  return step, (variables, x, jax.random.key(1))


def test_cpu_lowered_analysis_counts_what_the_default_lowering_counts():
  """The fallback for backends whose lowered module has no cost analysis lowers the same function
  for the CPU client from abstract arguments: on CPU both routes count the same FLOPs, for a
  gradient step that takes a PRNG key and a variables pytree."""
  step, args = _gradient_step_and_args()
  default = jax.jit(step).lower(*args).cost_analysis()
  assert cost.cpu_lowered_cost_analysis(step, *args)["flops"] == default["flops"] > 0


@pytest.mark.parametrize("cpu_route", [True, False])
def test_xla_flops_without_a_lowered_analysis(monkeypatch, cpu_route):
  """jax 0.11's GPU plugin returns None for Lowered.cost_analysis (seen on an H200): xla_flops
  then counts through the CPU lowering (the same count), and where that fails too, twice the
  jaxpr's MACs: within 20% of XLA's count (full kernel taps, no elementwise ops), and never the
  compiled module's count, which on a GPU leaves the cuDNN convolutions out."""
  step, args = _gradient_step_and_args()
  direct = cost.xla_flops(step, *args)
  # The first lowering (on the default device) answers None, as the GPU plugin does; the CPU
  # lowering after it answers as the CPU client does.
  real, calls = jax.stages.Lowered.cost_analysis, []
  monkeypatch.setattr(jax.stages.Lowered, "cost_analysis",
                      lambda self: real(self) if calls.append(1) or len(calls) > 1 else None)
  monkeypatch.setattr(jax.stages.Compiled, "cost_analysis",
                      lambda self: pytest.fail("the compiled count must not be used"))
  if not cpu_route:
    monkeypatch.setattr(cost, "cpu_lowered_cost_analysis", lambda *a: None)
  got = cost.xla_flops(step, *args)
  if cpu_route:
    assert got == direct
  else:
    assert got == 2 * cost.jaxpr_macs(step, *args)
    assert abs(got - direct) <= 0.2 * direct


def test_xla_flops_of_an_identity_is_zero():
  """A block with no arithmetic (the `skip` candidate) has no "flops" key in XLA's analysis: it
  costs 0, not NaN (scores.json refuses non-finite costs)."""
  assert cost.xla_flops(lambda x: x, jnp.zeros((2, 3))) == 0.0


def test_cli_prints_json_totals():
  proc = run_python(["-m", "compactkd_jax.cost", "--model", "resnet20"], timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  totals = json.loads(proc.stdout.strip().splitlines()[-1])
  assert totals["model"] == "resnet20"
  assert totals["params"] == pytest.approx(0.27e6, rel=0.01)
  assert totals["macs"] == pytest.approx(40.6e6, rel=0.01)
  assert 1.5 * totals["macs"] <= totals["flops"] <= 2.2 * totals["macs"]
  assert "| stage1_block0 |" in proc.stdout


def test_cli_unknown_model_is_one_line_error():
  proc = run_python(["-m", "compactkd_jax.cost", "--model", "resnet21"], timeout=120)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown model 'resnet21'")
