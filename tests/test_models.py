"""Tests for compactkd_jax.models: every zoo model, block ranges, JSON specs, and a PyTorch
cross-check of the residual blocks."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactkd_jax.errors import UserError
from compactkd_jax.models import MODELS, BlockNet, get_model, layers

SHAPES = [(32, 32, 3), (28, 28, 1)]


def _random_variables(module, in_shape, seed=0):
  """Variables of the right structure with NumPy random values: He-scaled kernels and
  non-trivial BN affine parameters and running statistics, so eval-mode BN is really exercised.
  (Avoids `module.init`, whose jax.random programs take seconds each to compile on this CPU.)"""
  x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)
  abstract = jax.eval_shape(module.init, jax.random.key(0), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    shape = leaf.shape
    if name.endswith("['kernel']"):
      value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
    elif name.endswith("['var']"):
      value = rng.uniform(0.5, 2.0, shape)
    elif name.endswith("['scale']"):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("['mean']") or name.endswith("['bias']"):
      value = rng.normal(0.0, 0.2, shape)
    else:
      raise AssertionError(f"unexpected variable {name}")
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def _input(shape, batch=2, seed=1):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)), jnp.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=["32x32x3", "28x28x1"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_and_names_its_features(name, shape):
  # Shapes only (abstract evaluation): numerics are checked below on a few models, and compiling
  # all twenty variants would cost a minute on this CPU.
  net = get_model(name, 7, width=0.25)
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)
  orders = []

  def apply(v, x):
    logits, features = net.apply(v, x)
    orders.append(list(features))  # at trace time: a jit/eval_shape output dict is key-sorted
    return logits, features

  logits, features = jax.eval_shape(apply, variables, x)
  assert logits.shape == (2, 7)
  assert orders == [[net.stem.name, *net.block_names]]
  assert len(net.block_names) == len(set(net.block_names)) and net.stem.name not in net.block_names
  for f in features.values():
    assert f.shape[0] == 2 and len(f.shape) == 4


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "mobilenet_v2"])
def test_any_contiguous_range_reproduces_full_features(name):
  net = get_model(name, 10, width=0.25)
  apply = jax.jit(net.apply, static_argnames=("train", "first", "last"))
  variables, x = _random_variables(net, (28, 28, 1)), _input((28, 28, 1))
  logits, features = apply(variables, x)
  assert np.all(np.isfinite(logits))
  order = [net.stem.name, *net.block_names]
  n = len(net.block_names)
  i, j = sorted(np.random.default_rng(0).choice(np.arange(1, n - 1), 2, replace=False))
  for i, j in [(0, n - 1), (i, j), (n // 2, n // 2)]:
    first, last = net.block_names[i], net.block_names[j]
    part_logits, part = apply(variables, features[order[i]], first=first, last=last)
    assert part_logits is None
    assert set(part) == set(net.block_names[i:j + 1])
    for k in part:
      np.testing.assert_allclose(part[k], features[k], rtol=1e-5, atol=1e-5)
  # With `first` only, the range runs to the head and gives the full network's logits.
  mid = net.block_names[n // 2]
  tail_logits, _ = apply(variables, features[order[n // 2]], first=mid)
  np.testing.assert_allclose(tail_logits, logits, rtol=1e-5, atol=1e-5)
  # With `last` only, the stem runs and no logits are computed.
  none_logits, head_part = apply(variables, x, last=net.block_names[1])
  assert none_logits is None and set(head_part) == set(order[:3])
  np.testing.assert_allclose(head_part[order[2]], features[order[2]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,options", [("resnet20", {"shortcut": "B", "width": 0.5}),
                                          ("vgg11", {"classifier": "zoo", "width": 0.25}),
                                          ("mobilenet_v2", {"width": 0.5, "dropout": 0.2})])
def test_blocknet_json_round_trip(name, options):
  net = get_model(name, 10, **options)
  text = json.dumps(net.to_json())
  restored = BlockNet.from_json(json.loads(text))
  assert restored == net
  assert json.dumps(restored.to_json()) == text
  x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  shapes = lambda m: jax.tree.map(lambda a: a.shape, jax.eval_shape(m.init, jax.random.key(0), x))
  assert shapes(restored) == shapes(net)


def test_unknown_model_lists_valid_names():
  with pytest.raises(UserError) as e:
    get_model("nope", 10)
  message = str(e.value)
  assert "nope" in message
  for name in MODELS:
    assert name in message


def test_bad_model_options_are_user_errors():
  with pytest.raises(UserError, match="bad options"):
    get_model("resnet20", 10, classifier="zoo")
  with pytest.raises(UserError, match="6n\\+2"):
    from compactkd_jax.models.zoo import resnet_cifar
    resnet_cifar(21, 10)
  with pytest.raises(UserError, match="shortcut"):
    get_model("resnet20", 10, shortcut="C")


# ---- PyTorch cross-check: the same weights in a hand-written torch module, eval-mode BN ----

try:
  import torch
  F = torch.nn.functional
except ImportError:  # the test extra is not installed: only the cross-checks are skipped
  torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _t(a):
  return torch.from_numpy(np.asarray(a, np.float32).copy())


def _conv_w(kernel):
  """Flax HWIO (grouped: H, W, I/groups, O) -> torch OIHW."""
  return _t(np.transpose(np.asarray(kernel), (3, 2, 0, 1)))


def _bn(x, params, stats):
  return F.batch_norm(x, _t(stats["mean"]), _t(stats["var"]), _t(params["scale"]),
                      _t(params["bias"]), training=False, eps=layers.BN_EPSILON)


def _torch_conv_unit(x, params, stats, stride, act, groups=1):
  w = _conv_w(params["conv"]["kernel"])
  k = w.shape[-1]
  x = F.conv2d(x, w, stride=stride, padding=k // 2, groups=groups)
  x = _bn(x, params["bn"], stats["bn"])
  return {"relu": F.relu, "relu6": F.relu6, "none": lambda y: y}[act](x)


def _torch_basic_block_a(x, params, stats, planes, stride):
  """The reference CIFAR BasicBlock (akamaster/pytorch_resnet_cifar10) with option-A shortcut."""
  out = _torch_conv_unit(x, params["unit1"], stats["unit1"], stride, "relu")
  out = _torch_conv_unit(out, params["unit2"], stats["unit2"], 1, "none")
  if stride != 1 or x.shape[1] != planes:
    shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
  else:
    shortcut = x
  return F.relu(out + shortcut)


def _torch_inverted_residual(x, params, stats, out_planes, stride, expansion):
  """torchvision-style MobileNetV2 InvertedResidual."""
  inp = x.shape[1]
  hidden = inp * expansion
  y = x
  if expansion != 1:
    y = _torch_conv_unit(y, params["expand"], stats["expand"], 1, "relu6")
  y = F.conv2d(y, _conv_w(params["dw"]["kernel"]), stride=stride, padding=1, groups=hidden)
  y = F.relu6(_bn(y, params["dw_bn"], stats["dw_bn"]))
  y = _torch_conv_unit(y, params["project"], stats["project"], 1, "none")
  if stride == 1 and inp == out_planes:
    y = y + x
  return y


def _flax_vs_torch(module, torch_fn, in_shape, seed=0):
  x = _input(in_shape, seed=seed + 1)
  variables = _random_variables(module, in_shape, seed)
  expected = np.asarray(module.apply(variables, x))
  with torch.no_grad():
    got = torch_fn(_t(np.transpose(np.asarray(x), (0, 3, 1, 2))), variables["params"],
                   variables["batch_stats"])
  np.testing.assert_allclose(np.transpose(got.numpy(), (0, 2, 3, 1)), expected, rtol=1e-4,
                             atol=1e-4)


@requires_torch
@pytest.mark.parametrize("in_shape,planes,stride", [((16, 16, 16), 32, 2), ((15, 15, 16), 32, 2),
                                                    ((8, 8, 16), 16, 1)])
def test_basic_block_option_a_matches_pytorch(in_shape, planes, stride):
  module = layers.BasicBlock(planes, stride=stride, shortcut="A")
  _flax_vs_torch(module, lambda x, p, s: _torch_basic_block_a(x, p, s, planes, stride), in_shape)


@requires_torch
@pytest.mark.parametrize("in_shape,planes,stride,expansion", [((16, 16, 16), 24, 2, 6),
                                                              ((7, 7, 24), 32, 2, 6),
                                                              ((8, 8, 24), 24, 1, 6),
                                                              ((8, 8, 16), 16, 1, 1)])
def test_inverted_residual_matches_pytorch(in_shape, planes, stride, expansion):
  module = layers.InvertedResidual(planes, stride=stride, expansion=expansion)
  _flax_vs_torch(module, lambda x, p, s: _torch_inverted_residual(x, p, s, planes, stride,
                                                                  expansion), in_shape)


def _depthwise_grads(form, x, w, stride):
  """Output and gradients (w.r.t. input and kernel) of a depthwise conv traced in `form`."""
  module = layers.DepthwiseConv(w.shape[0], stride)
  loss = lambda x, w: jnp.sum(jnp.sin(module.apply({"params": {"kernel": w}}, x)))
  if form == "convolution":
    with layers.depthwise_as_convolution():
      out = jax.jit(lambda x, w: module.apply({"params": {"kernel": w}}, x))(x, w)
      grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
  else:
    out = layers.depthwise_by_shifts(x, w, stride)
    grads = jax.grad(lambda x, w: jnp.sum(jnp.sin(layers.depthwise_by_shifts(x, w, stride))),
                     argnums=(0, 1))(x, w)
  return out, grads


@pytest.mark.parametrize("in_shape,kernel,stride", [((8, 8, 5), 3, 1), ((7, 7, 4), 3, 2),
                                                    ((8, 8, 3), 3, 2), ((9, 6, 2), 5, 1),
                                                    ((9, 9, 2), 5, 2), ((6, 6, 3), 1, 2)])
def test_depthwise_shifts_equal_grouped_convolution(in_shape, kernel, stride):
  """The CPU form (shifted sums) against lax's grouped convolution (the GPU/TPU form): outputs
  and both gradients, including odd sizes where stride 2 drops the last row."""
  x = _input(in_shape, batch=3)
  w = jnp.asarray(np.random.default_rng(2).normal(size=(kernel, kernel, 1, in_shape[-1])),
                  jnp.float32)
  out_conv, grads_conv = _depthwise_grads("convolution", x, w, stride)
  out_shift, grads_shift = _depthwise_grads("shifts", x, w, stride)
  assert out_shift.shape == out_conv.shape
  np.testing.assert_allclose(out_shift, out_conv, rtol=1e-5, atol=1e-5)
  for got, want in zip(grads_shift, grads_conv):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_depthwise_form_follows_backend_and_costs_use_convolution():
  """CPU traces the shifted form; inside depthwise_as_convolution (cost counting) the grouped
  convolution appears, so MACs and FLOPs are the same on every backend."""
  module = layers.DepthwiseConv(3, 1)
  x = jnp.zeros((1, 6, 6, 4))
  variables = {"params": {"kernel": jnp.ones((3, 3, 1, 4))}}
  primitives = lambda: {e.primitive.name for e in jax.make_jaxpr(module.apply)(variables, x).eqns}
  assert jax.default_backend() == "cpu"
  assert "conv_general_dilated" not in primitives()
  with layers.depthwise_as_convolution():
    assert "conv_general_dilated" in primitives()
  assert "conv_general_dilated" not in primitives()  # the context is left
