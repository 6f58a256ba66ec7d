"""The teacher zoo: CIFAR ResNets, VGG-BN and MobileNetV2 as `BlockNet` specs, and their registry.

Each builder returns plain data; widths follow the reference CIFAR implementations so parameter and
MAC counts match the published figures (checked in tests/test_cost.py).
"""
import inspect
from typing import Callable

from compactkd_jax.errors import UserError
from compactkd_jax.models.net import BlockNet, LayerSpec

VGG_CFGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}
# (expansion, channels, repeats, stride); the CIFAR variant keeps stride 1 in the second stage.
MOBILENET_V2_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1))


def resnet_cifar(depth: int, num_classes: int, shortcut: str = "A", width: float = 1.0) -> BlockNet:
  if (depth - 2) % 6:
    raise UserError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
  if shortcut not in ("A", "B"):
    raise UserError(f"ResNet shortcut must be 'A' or 'B', got {shortcut!r}")
  n = (depth - 2) // 6
  widths = [max(1, round(w * width)) for w in (16, 32, 64)]
  stem = LayerSpec.make("conv", "stem", features=widths[0])
  blocks = []
  for s, w in enumerate(widths):
    for i in range(n):
      stride = 2 if s > 0 and i == 0 else 1
      blocks.append(LayerSpec.make("basic", f"stage{s + 1}_block{i}", features=w, stride=stride,
                                   shortcut=shortcut))
  return BlockNet(stem, tuple(blocks), LayerSpec.make("head", "head", num_classes=num_classes))


def vgg_cifar(depth: int, num_classes: int, classifier: str = "single",
              width: float = 1.0) -> BlockNet:
  """VGG-BN; one block per conv, the max pool folded into the conv before it. The first conv is the
  stem. classifier "single": one dense layer; "zoo": 512-512-classes with dropout."""
  if classifier not in ("single", "zoo"):
    raise UserError(f"VGG classifier must be 'single' or 'zoo', got {classifier!r}")
  cfg = VGG_CFGS[depth]
  convs = [(max(1, round(c * width)), i + 1 < len(cfg) and cfg[i + 1] == "M")
           for i, c in enumerate(cfg) if c != "M"]
  stem = LayerSpec.make("conv", "stem", features=convs[0][0], pool=convs[0][1])
  blocks = tuple(LayerSpec.make("conv", f"conv{i}", features=c, pool=p)
                 for i, (c, p) in enumerate(convs[1:], start=1))
  hidden = (max(1, round(512 * width)),) * 2 if classifier == "zoo" else ()
  head = LayerSpec.make("head", "head", num_classes=num_classes, hidden=hidden,
                        dropout=0.5 if hidden else 0.0)
  return BlockNet(stem, blocks, head)


def mobilenet_v2_cifar(num_classes: int, width: float = 1.0, dropout: float = 0.0) -> BlockNet:
  stem = LayerSpec.make("conv", "stem", features=_divisible(32 * width), act="relu6")
  blocks = []
  for s, (t, c, n, stride) in enumerate(MOBILENET_V2_CFG):
    for i in range(n):
      blocks.append(LayerSpec.make("inverted_residual", f"stage{s + 1}_block{i}",
                                   features=_divisible(c * width), stride=stride if i == 0 else 1,
                                   expansion=t))
  last = _divisible(1280 * max(1.0, width))
  blocks.append(LayerSpec.make("conv", "last_conv", features=last, kernel=1, act="relu6"))
  head = LayerSpec.make("head", "head", num_classes=num_classes, dropout=dropout)
  return BlockNet(stem, tuple(blocks), head)


def _divisible(v: float, divisor: int = 8) -> int:
  """MobileNet channel rounding: nearest multiple of 8, never more than 10% below v."""
  new = max(divisor, int(v + divisor / 2) // divisor * divisor)
  return new + divisor if new < 0.9 * v else new


def _resnet(depth):
  return lambda num_classes, shortcut="A", width=1.0: resnet_cifar(depth, num_classes, shortcut,
                                                                   width)


def _vgg(depth):
  return lambda num_classes, classifier="single", width=1.0: vgg_cifar(depth, num_classes,
                                                                       classifier, width)


MODELS: dict[str, Callable[..., BlockNet]] = {
    **{f"resnet{d}": _resnet(d) for d in (20, 32, 44, 56, 110)},
    **{f"vgg{d}": _vgg(d) for d in (11, 13, 16, 19)},
    "mobilenet_v2": mobilenet_v2_cifar,
}


def check_model_name(name: str) -> None:
  if name not in MODELS:
    raise UserError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")


def get_model(name: str, num_classes: int, **options) -> BlockNet:
  """The teacher `name` with its options (shortcut / classifier / width / dropout)."""
  check_model_name(name)
  try:
    return MODELS[name](num_classes, **options)
  except TypeError as e:
    raise UserError(f"bad options {options} for model {name!r}: {e}") from None


def add_option_flags(parser) -> None:
  """The model options as argparse flags, for the command-line tools (cost, convert)."""
  parser.add_argument("--shortcut", help="ResNet shortcut: A or B")
  parser.add_argument("--classifier", help="VGG classifier: single or zoo")
  parser.add_argument("--width", type=float, help="width multiplier")


def options_from_flags(args) -> dict:
  return {k: getattr(args, k) for k in ("shortcut", "classifier", "width")
          if getattr(args, k) is not None}


def checked_flags(args) -> tuple[tuple[int, int, int], dict]:
  """(image shape, options) of the command-line tools' model flags, checked like the config keys:
  --image_shape is H,W,C of positive integers, --num_classes at least 2, --width finite and > 0."""
  try:
    shape = tuple(int(v) for v in str(args.image_shape).split(","))
  except ValueError:
    shape = ()
  if len(shape) != 3 or min(shape) < 1:
    raise UserError(f"--image_shape takes H,W,C (three positive integers, e.g. 32,32,3), got "
                    f"{args.image_shape!r}")
  if args.num_classes < 2:
    raise UserError(f"--num_classes must be at least 2, got {args.num_classes}")
  options = options_from_flags(args)
  width = options.get("width")
  if width is not None and not 0 < width < float("inf"):
    raise UserError(f"--width must be a finite number > 0, got {width}")
  return shape, options


def model_options(name: str, options: dict) -> dict:
  """The subset of `options` that model `name` takes (configs carry every family's options)."""
  check_model_name(name)
  accepted = inspect.signature(MODELS[name]).parameters
  return {k: v for k, v in options.items() if k in accepted}
