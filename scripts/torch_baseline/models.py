"""PyTorch reference models: the CIFAR zoo teachers under the module names of the popular pretrained
PyTorch CIFAR checkpoints, and op-for-op mirrors of compactkd_jax's Linen blocks.

Two kinds of module live here, for two jobs:
- Zoo teachers (`CifarResNet`, `VGG`, `MobileNetV2`) whose `state_dict()` keys are those of
  akamaster/pytorch_resnet_cifar10 and chenyaofo/pytorch-cifar-models (`conv1`, `layer1.0.bn2`,
  `layer2.0.shortcut.0`, `fc`; `features.N`, `classifier.N`; torchvision's MobileNetV2 layout), so
  `compactkd_jax.convert` is tested against the layouts real checkpoints have.
- Mirrors (`BlockNet` built from `compactkd_jax.models.BlockNet.to_json()`, with `MIRRORS` for each
  layer kind) that apply the same ops in the same order as compactkd_jax/models/layers.py and name
  their submodules after the Flax ones, so a benchmark compares like for like and
  `load_flax_variables` copies any teacher, student or candidate across by name.

Plain PyTorch and NumPy only: nothing here imports compactkd_jax (specs arrive as JSON dicts).
"""
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

VGG_CFGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}
# (expansion, channels, repeats, stride): torchvision's table with the CIFAR changes (stem stride 1,
# second stage stride 1), as in kuangliu/pytorch-cifar and compactkd_jax's MOBILENET_V2_CFG.
MOBILENET_V2_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1))
# PyTorch's BatchNorm2d default, which compactkd_jax also uses (layers.BN_EPSILON).
BN_EPSILON = 1e-5


# ---------------------------------------------------------------------------------------------
# Zoo teachers, under the pretrained checkpoints' key names.
# ---------------------------------------------------------------------------------------------

class ShortcutA(nn.Module):
  """akamaster's option-A LambdaLayer: stride-2 subsample, planes // 4 zero channels on each side.

  Parameter-free, so it adds no state-dict keys (akamaster wraps a lambda, which has none either).
  """

  def __init__(self, planes: int):
    super().__init__()
    self.planes = planes

  def forward(self, x):
    return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4))


class ZooBasicBlock(nn.Module):
  """CIFAR ResNet basic block: conv1/bn1/relu/conv2/bn2, + shortcut, relu."""

  def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A"):
    super().__init__()
    self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.shortcut = nn.Sequential()
    if stride != 1 or in_planes != planes:
      if shortcut == "A":
        self.shortcut = ShortcutA(planes)
      else:  # option B: keys shortcut.0.weight (conv 1x1) and shortcut.1.* (BN)
        self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                      nn.BatchNorm2d(planes))

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
  """ResNet-20/32/44/56/110 for CIFAR (He et al. 2016, section 4.2): conv1, bn1, layer1..3, fc."""

  def __init__(self, depth: int, num_classes: int = 10, shortcut: str = "A", width: float = 1.0,
               in_channels: int = 3):
    super().__init__()
    if (depth - 2) % 6:
      raise ValueError(f"depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    widths = [max(1, round(w * width)) for w in (16, 32, 64)]
    self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(widths[0])
    in_planes = widths[0]
    for s, planes in enumerate(widths):
      blocks = []
      for i in range(n):
        blocks.append(ZooBasicBlock(in_planes, planes, 2 if s > 0 and i == 0 else 1, shortcut))
        in_planes = planes
      setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
    self.fc = nn.Linear(in_planes, num_classes)

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    x = self.layer3(self.layer2(self.layer1(x)))
    return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class VGG(nn.Module):
  """VGG-BN for CIFAR: `features` (Conv2d with bias, as in the zoos, BN, ReLU; MaxPool2d(2)),
  flatten, `classifier`: "single" Linear(512, classes) or "zoo" 512-512-classes with dropout.

  The zoos flatten, which equals compactkd_jax's global average pool because a 32x32 input leaves a
  1x1 map. `ceil_mode=True` makes the pools keep odd sizes (28 -> 14 -> 7 -> 4) as compactkd_jax's
  'SAME' pool does; the zoos' floor pooling would shrink a 28x28 input to nothing.
  """

  def __init__(self, depth: int, num_classes: int = 10, classifier: str = "single",
               width: float = 1.0, in_channels: int = 3, ceil_mode: bool = False):
    super().__init__()
    layers, c_in = [], in_channels
    for v in VGG_CFGS[depth]:
      if v == "M":
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
      else:
        v = max(1, round(v * width))
        layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
        c_in = v
    self.features = nn.Sequential(*layers)
    if classifier == "single":
      self.classifier = nn.Linear(c_in, num_classes)
    elif classifier == "zoo":
      hidden = max(1, round(512 * width))
      self.classifier = nn.Sequential(
          nn.Linear(c_in, hidden), nn.ReLU(True), nn.Dropout(),
          nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
          nn.Linear(hidden, num_classes))
    else:
      raise ValueError(f"classifier must be 'single' or 'zoo', got {classifier!r}")

  def forward(self, x):
    return self.classifier(torch.flatten(self.features(x), 1))


def make_divisible(v: float, divisor: int = 8) -> int:
  """torchvision's _make_divisible: nearest multiple of 8, never more than 10% below v."""
  new = max(divisor, int(v + divisor / 2) // divisor * divisor)
  return new + divisor if new < 0.9 * v else new


class ConvBNReLU6(nn.Sequential):
  """torchvision's Conv2dNormActivation with ReLU6: keys .0 (conv) and .1 (BN)."""

  def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups,
                               bias=False),
                     nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))


class ZooInvertedResidual(nn.Module):
  """torchvision's InvertedResidual: `conv` = [expand ConvBNReLU6], dw ConvBNReLU6, project, BN."""

  def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
    super().__init__()
    hidden = int(round(c_in * expansion))
    self.use_residual = stride == 1 and c_in == c_out
    layers = [ConvBNReLU6(c_in, hidden, 1)] if expansion != 1 else []
    layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
               nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
    self.conv = nn.Sequential(*layers)

  def forward(self, x):
    return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
  """MobileNetV2 for CIFAR with torchvision's keys: features.0 stem, features.1-17 inverted
  residuals, features.18 the 1x1 conv to 1280, classifier = (Dropout, Linear)."""

  def __init__(self, num_classes: int = 10, width: float = 1.0, dropout: float = 0.2,
               in_channels: int = 3):
    super().__init__()
    c_in = make_divisible(32 * width)
    layers: list[nn.Module] = [ConvBNReLU6(in_channels, c_in, 3, 1)]
    for t, c, n, s in MOBILENET_V2_CFG:
      c_out = make_divisible(c * width)
      for i in range(n):
        layers.append(ZooInvertedResidual(c_in, c_out, s if i == 0 else 1, t))
        c_in = c_out
    last = make_divisible(1280 * max(1.0, width))
    layers.append(ConvBNReLU6(c_in, last, 1))
    self.features = nn.Sequential(*layers)
    self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

  def forward(self, x):
    x = F.adaptive_avg_pool2d(self.features(x), 1)
    return self.classifier(torch.flatten(x, 1))


def zoo_model(name: str, num_classes: int = 10, in_channels: int = 3, **options) -> nn.Module:
  """The zoo teacher `name` (resnet20 ... resnet110, vgg11 ... vgg19, mobilenet_v2)."""
  if name.startswith("resnet"):
    return CifarResNet(int(name[len("resnet"):]), num_classes, in_channels=in_channels, **options)
  if name.startswith("vgg"):
    return VGG(int(name[len("vgg"):]), num_classes, in_channels=in_channels, **options)
  if name == "mobilenet_v2":
    return MobileNetV2(num_classes, in_channels=in_channels, **options)
  raise ValueError(f"unknown model {name!r}")


# ---------------------------------------------------------------------------------------------
# Mirrors of compactkd_jax/models/layers.py: same ops, same order, submodules named as in Flax.
# ---------------------------------------------------------------------------------------------

def _scaled(width: int, ratio: float) -> int:
  return max(1, int(round(width * ratio)))


ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6, "none": lambda x: x}


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
  # Symmetric k // 2 padding, as layers.conv pads explicitly (not 'SAME').
  return nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)


class ConvUnit(nn.Module):
  """layers.ConvUnit: conv (or dw k x k then pw 1 x 1), bn, activation."""

  def __init__(self, c_in: int, features: int, kernel: int = 3, stride: int = 1,
               conv_type: str = "full", act: str = "relu"):
    super().__init__()
    if conv_type == "dwsep" and kernel > 1:
      self.dw = _conv(c_in, c_in, kernel, stride, groups=c_in)
      self.pw = _conv(c_in, features, 1)
    else:
      self.conv = _conv(c_in, features, kernel, stride)
    self.bn = nn.BatchNorm2d(features, eps=BN_EPSILON)
    self.act = act

  def forward(self, x):
    x = self.conv(x) if hasattr(self, "conv") else self.pw(self.dw(x))
    return ACTIVATIONS[self.act](self.bn(x))


class ConvBlock(nn.Module):
  """layers.ConvBlock: unit, optional 1 x 1 `restore` unit, optional 2x2 max pool."""

  def __init__(self, c_in: int, features: int, kernel: int = 3, stride: int = 1,
               pool: bool = False, conv_type: str = "full", act: str = "relu",
               width_ratio: float = 1.0):
    super().__init__()
    low_rank = kernel == 1 and width_ratio < 1  # as Flax's
    inner = _scaled(min(c_in, features) if low_rank else features, width_ratio)
    self.unit = ConvUnit(c_in, inner, kernel, stride, conv_type, act)
    self.restore = ConvUnit(inner, features, 1, act=act) if inner != features else None
    # ceil_mode equals Flax's 'SAME' 2x2/2 pool: odd sizes keep their last row and column.
    self.pool = nn.MaxPool2d(2, 2, ceil_mode=True) if pool else None
    self.out_channels = features

  def forward(self, x):
    x = self.unit(x)
    if self.restore is not None:
      x = self.restore(x)
    return self.pool(x) if self.pool is not None else x


class BasicBlock(nn.Module):
  """layers.BasicBlock: unit1 (relu), unit2 (no act), optional restore, + shortcut, relu; the
  middle width is inner_ratio x the conv width (1 but for the "inner" candidates).

  Option A pads (extra // 2, extra - extra // 2) zero channels, as the Flax block does; it equals
  akamaster's planes // 4 on each side whenever the width doubles (every zoo ResNet).
  """

  def __init__(self, c_in: int, features: int, stride: int = 1, shortcut: str = "A",
               conv_type: str = "full", width_ratio: float = 1.0, inner_ratio: float = 1.0):
    super().__init__()
    inner = _scaled(features, width_ratio)
    middle = _scaled(inner, inner_ratio)
    self.unit1 = ConvUnit(c_in, middle, 3, stride, conv_type, "relu")
    self.unit2 = ConvUnit(middle, inner, 3, 1, conv_type, "none")
    self.restore = ConvUnit(inner, features, 1, act="none") if inner != features else None
    self.stride, self.features, self.shortcut = stride, features, shortcut
    self.reshape = stride != 1 or c_in != features
    if self.reshape and shortcut == "B":
      self.shortcut_conv = _conv(c_in, features, 1, stride)
      self.shortcut_bn = nn.BatchNorm2d(features, eps=BN_EPSILON)
    self.out_channels = features

  def forward(self, x):
    y = self.unit2(self.unit1(x))
    if self.restore is not None:
      y = self.restore(y)
    return F.relu(y + self._shortcut(x))

  def _shortcut(self, x):
    if not self.reshape:
      return x
    if self.shortcut == "A":
      x = x[:, :, ::self.stride, ::self.stride]
      extra = self.features - x.shape[1]
      return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
    return self.shortcut_bn(self.shortcut_conv(x))


class InvertedResidual(nn.Module):
  """layers.InvertedResidual: expand (when the width changes), dw 3x3 + dw_bn + relu6, project."""

  def __init__(self, c_in: int, features: int, stride: int = 1, expansion: int = 6,
               width_ratio: float = 1.0):
    super().__init__()
    inner = _scaled(c_in * expansion, width_ratio)
    self.expand = ConvUnit(c_in, inner, 1, act="relu6") if inner != c_in else None
    self.dw = _conv(inner, inner, 3, stride, groups=inner)
    self.dw_bn = nn.BatchNorm2d(inner, eps=BN_EPSILON)
    self.project = ConvUnit(inner, features, 1, act="none")
    self.residual = stride == 1 and c_in == features
    self.out_channels = features

  def forward(self, x):
    y = self.expand(x) if self.expand is not None else x
    y = self.project(F.relu6(self.dw_bn(self.dw(y))))
    return y + x if self.residual else y


class Identity(nn.Module):
  """layers.Identity: the `skip` candidate."""

  def __init__(self, c_in: int):
    super().__init__()
    self.out_channels = c_in

  def forward(self, x):
    return x


class Head(nn.Module):
  """layers.Head: global average pool, hidden dense + relu + dropout, classifier."""

  def __init__(self, c_in: int, num_classes: int, hidden: Sequence[int] = (), dropout: float = 0.0):
    super().__init__()
    for i, width in enumerate(hidden):
      self.add_module(f"hidden{i}", nn.Linear(c_in, width))
      c_in = width
    self.num_hidden = len(hidden)
    self.drop = nn.Dropout(dropout)
    self.classifier = nn.Linear(c_in, num_classes)

  def forward(self, x):
    x = x.mean(dim=(2, 3))
    for i in range(self.num_hidden):
      x = self.drop(F.relu(getattr(self, f"hidden{i}")(x)))
    return self.classifier(self.drop(x) if not self.num_hidden else x)


# Mirror of compactkd_jax.models.net.LAYERS: a spec's kind -> the module that mirrors it.
MIRRORS: dict[str, type[nn.Module]] = {
    "conv": ConvBlock,
    "basic": BasicBlock,
    "inverted_residual": InvertedResidual,
    "identity": Identity,
    "head": Head,
}


class BlockNet(nn.Module):
  """net.BlockNet from its JSON spec (`BlockNet.to_json()`): stem, blocks, head as attributes named
  after the Flax modules, so state-dict keys follow the Flax variable paths."""

  def __init__(self, spec: Mapping[str, Any], in_channels: int):
    super().__init__()
    self.order = [spec["stem"]["name"], *(b["name"] for b in spec["blocks"])]
    c = in_channels
    for part in (spec["stem"], *spec["blocks"]):
      module = _mirror(part, c)
      self.add_module(part["name"], module)
      c = module.out_channels
    self.head_name = spec["head"]["name"]
    self.add_module(self.head_name, _mirror(spec["head"], c))

  def forward(self, x):
    for name in self.order:
      x = getattr(self, name)(x)
    return getattr(self, self.head_name)(x)


def _mirror(part: Mapping[str, Any], c_in: int) -> nn.Module:
  if part["kind"] not in MIRRORS:
    raise ValueError(f"no PyTorch mirror for layer kind {part['kind']!r}; mirrors: {list(MIRRORS)}")
  return MIRRORS[part["kind"]](c_in, **part["options"])


# Flax leaf name -> PyTorch parameter / buffer name.
_FLAX_TO_TORCH = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
                  "var": "running_var"}


def load_flax_variables(module: nn.Module, variables: Mapping[str, Any]) -> None:
  """Copies Flax variables ({"params", "batch_stats"} nested dicts) into a mirror, by name.

  Kernels go HWIO -> OIHW (a depthwise (k, k, 1, C) becomes (C, 1, k, k)) and dense (in, out) ->
  (out, in). Every tensor of the mirror must be covered, and every Flax leaf used.
  """
  target = module.state_dict()
  loaded = {}
  for collection in ("params", "batch_stats"):
    for path, value in _flatten(variables.get(collection, {})):
      key = ".".join((*path[:-1], _FLAX_TO_TORCH[path[-1]]))
      value = np.asarray(value, np.float32)
      if value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
      elif value.ndim == 2:
        value = value.T
      loaded[key] = torch.tensor(value)  # a copy: device_get may hand back read-only arrays
  extra = sorted(set(loaded) - set(target))
  missing = sorted(k for k in set(target) - set(loaded) if not k.endswith("num_batches_tracked"))
  if extra or missing:
    raise ValueError(f"Flax variables do not fit the mirror: unused {extra}, missing {missing}")
  target.update(loaded)
  module.load_state_dict(target)


def _flatten(tree, prefix=()):
  for k, v in tree.items():
    if isinstance(v, Mapping):
      yield from _flatten(v, (*prefix, k))
    else:
      yield (*prefix, k), v


def count_macs(model: nn.Module, image_shape: Sequence[int]) -> int:
  """Conv and linear multiply-accumulates of one image, counted with forward hooks.

  conv: output elements x in_channels / groups x kh x kw; linear: in x out. Independent of
  compactkd_jax's jaxpr counter, which it cross-checks. `image_shape` is (H, W, C).
  """
  total = [0]

  def conv_hook(m, inputs, out):
    total[0] += out[0].numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

  def linear_hook(m, inputs, out):
    total[0] += m.in_features * m.out_features

  handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
  h, w, c = image_shape
  was_training = model.training
  try:
    model.eval()
    with torch.no_grad():
      model(torch.zeros(1, c, h, w))
  finally:
    model.train(was_training)
    for handle in handles:
      handle.remove()
  return total[0]
