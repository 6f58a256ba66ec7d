"""The Linen building blocks every teacher and candidate is made of.

Each module maps an NHWC feature map to an NHWC feature map (or logits, for `Head`) and takes only
hashable options, so a network is fully described by plain data (see `net.LayerSpec`).
Convolutions pad explicitly by k // 2 on every side, as PyTorch does: JAX's 'SAME' pads stride-2
convolutions asymmetrically, which would break weight import and change the MAC counts.
"""
import contextlib
import contextvars
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# PyTorch's defaults (momentum 0.1 there means 0.9 here), so imported weights behave identically.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# He init on fan-out, as the CIFAR ResNet and MobileNetV2 reference implementations do.
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

ACTIVATIONS = {"relu": nn.relu, "relu6": nn.relu6, "none": lambda x: x}


def batch_norm(train: bool, name: str | None = None, zero_init: bool = False) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                      scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones,
                      name=name)


def conv(features: int, kernel: int = 3, stride: int = 1, name: str | None = None) -> nn.Conv:
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=CONV_INIT, name=name)


# None: the backend decides (see DepthwiseConv); "convolution" while costs are traced.
_DEPTHWISE_FORM = contextvars.ContextVar("depthwise_form", default=None)


@contextlib.contextmanager
def _depthwise_as(form: str):
  token = _DEPTHWISE_FORM.set(form)
  try:
    yield
  finally:
    _DEPTHWISE_FORM.reset(token)


def depthwise_as_convolution():
  """Within this block depthwise convolutions trace as lax convolutions on every backend. cost.py
  counts FLOPs and MACs this way, so a block's cost, and therefore a budget's plan, does not depend
  on the machine that computed it; exports use it so runtimes see depthwise convolutions."""
  return _depthwise_as("convolution")


def depthwise_as_shifts():
  """Within this block depthwise convolutions trace as shifted sums on every backend (to measure
  that form against the convolution on a GPU: scripts/bench.py --depthwise_form shifts)."""
  return _depthwise_as("shifts")


def _depthwise_form() -> str:
  return _DEPTHWISE_FORM.get() or ("shifts" if jax.default_backend() == "cpu" else "convolution")


class DepthwiseConv(nn.Module):
  """k x k depthwise convolution padded by k // 2, with nn.Conv's parameter (kernel (k, k, 1, C),
  same init), so checkpoints and imported weights do not care which form ran.

  On CPU it runs as a sum of k * k shifted, scaled copies of the input: XLA:CPU's grouped
  convolution is several times slower, forward and backward (a MobileNetV2 train step: 45 vs 125
  images/s; scripts/bench.py --depthwise_form, results/bench_cpu2core_mobilenet_v2*).
  GPUs and TPUs have fast depthwise kernels and run the convolution.
  """
  kernel: int = 3
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", CONV_INIT, (self.kernel, self.kernel, 1, x.shape[-1]))
    if _depthwise_form() == "shifts":
      return depthwise_by_shifts(x, w, self.stride)
    pad = self.kernel // 2
    return lax.conv_general_dilated(x, w, (self.stride, self.stride), ((pad, pad), (pad, pad)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=x.shape[-1])


def depthwise_by_shifts(x: jax.Array, w: jax.Array, stride: int) -> jax.Array:
  """The depthwise convolution of NHWC x by (k, k, 1, C) w as k * k strided slices of the padded
  input, each scaled by one kernel tap; equal to the convolution up to float rounding."""
  k = w.shape[0]
  pad = k // 2
  n, h, width, c = x.shape
  out_h, out_w = (h + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = None
  for i in range(k):
    for j in range(k):
      window = lax.slice(padded, (0, i, j, 0),
                         (n, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, c),
                         (1, stride, stride, 1))
      term = window * w[i, j, 0]
      out = term if out is None else out + term
  return out


class ConvUnit(nn.Module):
  """k x k conv (full, or depthwise-separable: depthwise k x k then pointwise 1 x 1), BN, activation."""
  features: int
  kernel: int = 3
  stride: int = 1
  conv_type: str = "full"  # "full" | "dwsep"
  act: str = "relu"

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.conv_type == "dwsep" and self.kernel > 1:
      x = DepthwiseConv(self.kernel, self.stride, name="dw")(x)
      x = conv(self.features, 1, name="pw")(x)
    else:
      x = conv(self.features, self.kernel, self.stride, name="conv")(x)
    x = batch_norm(train, name="bn")(x)
    return ACTIVATIONS[self.act](x)


class ConvBlock(nn.Module):
  """VGG-style block: one conv unit, optionally a 2x2 max pool.

  width_ratio < 1 makes the conv narrower and adds a 1 x 1 conv unit that restores the width. A
  1 x 1 conv is narrowed to width_ratio x min(input, output) channels instead: a low-rank
  factorization (narrowing its output width would only add the restore's parameters; this is
  what makes MobileNetV2's 320 -> 1280 last conv, 18% of its parameters, compressible).
  """
  features: int
  kernel: int = 3
  stride: int = 1
  pool: bool = False
  conv_type: str = "full"
  act: str = "relu"
  width_ratio: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    low_rank = self.kernel == 1 and self.width_ratio < 1
    rank = min(x.shape[-1], self.features) if low_rank else self.features
    inner = _scaled(rank, self.width_ratio)
    x = ConvUnit(inner, self.kernel, self.stride, self.conv_type, self.act, name="unit")(x, train)
    if inner != self.features:
      x = ConvUnit(self.features, 1, act=self.act, name="restore")(x, train)
    if self.pool:
      # 'SAME' equals PyTorch's MaxPool2d(2) on even sizes and keeps odd sizes (28 -> 14 -> 7 -> 4).
      x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    return x


class BasicBlock(nn.Module):
  """CIFAR ResNet basic block. shortcut "A": strided identity, zero-padded channels (no params);
  "B": 1 x 1 conv + BN where the shape changes.

  width_ratio < 1 narrows both 3 x 3 convs and restores the width with a 1 x 1 conv unit ("slim").
  inner_ratio < 1 narrows only the channels between the two 3 x 3 convs; unit2 keeps the block's
  full output, so no restore is needed: the block structured pruning leaves ("inner")."""
  features: int
  stride: int = 1
  shortcut: str = "A"
  conv_type: str = "full"
  width_ratio: float = 1.0
  inner_ratio: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    inner = _scaled(self.features, self.width_ratio)
    middle = _scaled(inner, self.inner_ratio)
    y = ConvUnit(middle, 3, self.stride, self.conv_type, "relu", name="unit1")(x, train)
    y = ConvUnit(inner, 3, 1, self.conv_type, "none", name="unit2")(y, train)
    if inner != self.features:
      y = ConvUnit(self.features, 1, act="none", name="restore")(y, train)
    return nn.relu(y + self._shortcut(x, train))

  def _shortcut(self, x, train):
    if self.stride == 1 and x.shape[-1] == self.features:
      return x
    if self.shortcut == "A":
      # lax.slice, not x[:, ::s, ::s]: with a symbolic batch (exports) indexing becomes a gather,
      # which the LiteRT converter cannot take; a strided slice it can.
      x = jax.lax.slice(x, (0, 0, 0, 0), x.shape, (1, self.stride, self.stride, 1))
      extra = self.features - x.shape[-1]
      return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    x = conv(self.features, 1, self.stride, name="shortcut_conv")(x)
    return batch_norm(train, name="shortcut_bn")(x)


class InvertedResidual(nn.Module):
  """MobileNetV2 block: 1 x 1 expand (skipped when expansion is 1), depthwise 3 x 3, 1 x 1 project;
  residual when the shape is kept. `inner` overrides the expanded width (narrower candidates)."""
  features: int
  stride: int = 1
  expansion: int = 6
  width_ratio: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    inner = _scaled(x.shape[-1] * self.expansion, self.width_ratio)
    y = x
    if inner != x.shape[-1]:
      y = ConvUnit(inner, 1, act="relu6", name="expand")(y, train)
    y = DepthwiseConv(3, self.stride, name="dw")(y)
    y = nn.relu6(batch_norm(train, name="dw_bn")(y))
    y = ConvUnit(self.features, 1, act="none", name="project")(y, train)
    if self.stride == 1 and x.shape[-1] == self.features:
      y = y + x
    return y


class Identity(nn.Module):
  """The `skip` candidate: a residual block whose shape is kept can be dropped entirely."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    return x


class Head(nn.Module):
  """Global average pool, optional hidden dense layers with dropout, the classifier."""
  num_classes: int
  hidden: Sequence[int] = ()
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = jnp.mean(x, axis=(1, 2))
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, name=f"hidden{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    if self.dropout and not self.hidden:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name="classifier")(x)


def _scaled(width: int, ratio: float) -> int:
  return max(1, int(round(width * ratio)))
