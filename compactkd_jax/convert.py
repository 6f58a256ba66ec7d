"""PyTorch weights into Flax variables: a zoo teacher's `state_dict` mapped onto its `BlockNet`.

Key layouts are those of the popular pretrained PyTorch CIFAR zoos (see
scripts/torch_baseline/models.py for reference modules with exactly these keys):
- resnet: akamaster/pytorch_resnet_cifar10 and chenyaofo/pytorch-cifar-models: `conv1`, `bn1`,
  `layerS.I.{conv1,bn1,conv2,bn2}`, option-B `layerS.I.shortcut.{0,1}` (chenyaofo's `downsample`
  is accepted too), `fc` (akamaster's `linear` too).
- vgg: `features.N` (Conv2d, BatchNorm2d, ReLU per conv; MaxPool2d per "M"), `classifier` (one
  Linear) or `classifier.{0,3,6}` (512-512-classes).
- mobilenet_v2: torchvision's layout with the CIFAR strides: `features.0` stem, `features.1-17`
  inverted residuals, `features.18` 1x1 conv, `classifier.1`.

Conversions: conv OIHW -> HWIO (a depthwise (C, 1, k, k) becomes (k, k, 1, C)), linear (out, in) ->
(in, out), BN weight/bias/running_mean/running_var -> scale/bias/mean/var; `num_batches_tracked`
is ignored. The zoos' VGG convs have a bias, compactkd_jax's do not (BN follows every conv): since
BN(conv(x) + b) has running mean m, the bias folds exactly into the BN as mean' = m - b.

Keys do not record strides or pooling, so a checkpoint must come from the architecture it is loaded
into: torchvision's ImageNet MobileNetV2 (stride-2 stem) loads without error into the CIFAR one
and computes something else. The VGG head averages where the zoos flatten (equal when the last map
is 1x1, as on 32x32 inputs), and its 'SAME' pools equal PyTorch's MaxPool2d(2) on even sizes and
MaxPool2d(2, ceil_mode=True) on odd ones.

This module never imports torch at the top: `torch_state_dict_to_variables` takes anything
`np.asarray` reads, and only `import_teacher` (which reads .pt/.pth files) imports it.
Run `python -m compactkd_jax.convert --help` to turn a checkpoint into a teacher directory.
"""
import dataclasses
import math
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from compactkd_jax import errors
from compactkd_jax.errors import UserError
from compactkd_jax.models import zoo
from compactkd_jax.models.net import BlockNet

IGNORED_SUFFIXES = ("num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class Link:
  """One PyTorch module (`torch`, a key prefix) feeding one Flax module (`flax`, a path).

  kind "conv" | "bn" | "dense". `fold_bias`: the key of a conv bias to fold into this BN's mean
  (optional in the state dict: zoos built with bias=False simply lack it).
  """
  flax: tuple[str, ...]
  torch: str
  kind: str
  fold_bias: str | None = None


# Flax leaf -> PyTorch suffix, per kind, with the collection each leaf lives in.
LEAVES = {
    "conv": (("params", "kernel", "weight"),),
    "dense": (("params", "kernel", "weight"), ("params", "bias", "bias")),
    "bn": (("params", "scale", "weight"), ("params", "bias", "bias"),
           ("batch_stats", "mean", "running_mean"), ("batch_stats", "var", "running_var")),
}


def _unit(flax: tuple[str, ...], conv: str, bn: str, conv_bias: bool = False) -> list[Link]:
  """A layers.ConvUnit (its `conv` and `bn`) fed by a conv and a BN module."""
  return [Link((*flax, "conv"), conv, "conv"),
          Link((*flax, "bn"), bn, "bn", f"{conv}.bias" if conv_bias else None)]


def _head(net: BlockNet, dense: Sequence[str]) -> list[Link]:
  names = [f"hidden{i}" for i in range(len(dense) - 1)] + ["classifier"]
  return [Link((net.head.name, n), t, "dense") for n, t in zip(names, dense)]


def _resnet_links(net: BlockNet) -> list[Link]:
  links = _unit((net.stem.name, "unit"), "conv1", "bn1")
  stage_index: dict[str, int] = {}
  for block in net.blocks:
    stage = block.name.split("_")[0]  # zoo block names: stage{S}_block{I}
    i = stage_index[stage] = stage_index.get(stage, -1) + 1
    t = f"layer{stage.removeprefix('stage')}.{i}"
    links += _unit((block.name, "unit1"), f"{t}.conv1", f"{t}.bn1")
    links += _unit((block.name, "unit2"), f"{t}.conv2", f"{t}.bn2")
    # Option B only: option A's shortcut has no variables, so these links are dropped below.
    links += [Link((block.name, "shortcut_conv"), f"{t}.shortcut.0", "conv"),
              Link((block.name, "shortcut_bn"), f"{t}.shortcut.1", "bn")]
  return links + _head(net, ["fc"])


def _vgg_links(net: BlockNet) -> list[Link]:
  links, index = [], 0
  parts = [net.stem, *net.blocks]
  for part in parts:
    # features: Conv2d, BatchNorm2d, ReLU per conv, then a MaxPool2d where the block pools.
    links += _unit((part.name, "unit"), f"features.{index}", f"features.{index + 1}",
                   conv_bias=True)
    index += 4 if dict(part.options).get("pool") else 3
  hidden = dict(net.head.options).get("hidden", ())
  # "zoo" classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear.
  return links + _head(net, [f"classifier.{3 * i}" for i in range(len(hidden) + 1)]
                       if hidden else ["classifier"])


def _mobilenet_v2_links(net: BlockNet) -> list[Link]:
  links = _unit((net.stem.name, "unit"), "features.0.0", "features.0.1")
  for n, block in enumerate(net.blocks, start=1):
    t = f"features.{n}"
    if block.kind == "conv":  # the last 1x1 conv to 1280
      links += _unit((block.name, "unit"), f"{t}.0", f"{t}.1")
      continue
    # torchvision drops the expand ConvBNReLU when t = 1, shifting the later indices by one.
    e = 0 if dict(block.options).get("expansion", 6) == 1 else 1
    if e:
      links += _unit((block.name, "expand"), f"{t}.conv.0.0", f"{t}.conv.0.1")
    links += [Link((block.name, "dw"), f"{t}.conv.{e}.0", "conv"),
              Link((block.name, "dw_bn"), f"{t}.conv.{e}.1", "bn")]
    links += _unit((block.name, "project"), f"{t}.conv.{e + 1}", f"{t}.conv.{e + 2}")
  return links + _head(net, ["classifier.1"])


@dataclasses.dataclass(frozen=True)
class Family:
  links: Callable[[BlockNet], list[Link]]
  # Alternative key components some zoos use -> the ones `links` names.
  aliases: tuple[tuple[str, str], ...] = ()


# Explicit registry of importable families; `family_of` infers the family from the block kinds.
FAMILIES: dict[str, Family] = {
    "resnet": Family(_resnet_links, (("linear", "fc"), ("downsample", "shortcut"))),
    "vgg": Family(_vgg_links),
    "mobilenet_v2": Family(_mobilenet_v2_links),
}


def family_of(net: BlockNet) -> str:
  kinds = {b.kind for b in net.blocks}
  if "basic" in kinds:
    return "resnet"
  if "inverted_residual" in kinds:
    return "mobilenet_v2"
  if kinds == {"conv"}:
    return "vgg"
  raise UserError(f"cannot tell which PyTorch family a network of blocks {sorted(kinds)} comes "
                  f"from; importable families: {list(FAMILIES)}")


def torch_state_dict_to_variables(state_dict: Mapping[str, Any], net: BlockNet,
                                  family: str | None = None) -> dict:
  """Flax variables {"params", "batch_stats"} (NumPy float32) for `net` from a PyTorch state dict.

  `state_dict` values: anything np.asarray reads (call `.numpy()` on torch tensors). A "module."
  prefix (nn.DataParallel) is stripped. Keys the network does not use, keys it needs but the dict
  lacks, and shape mismatches are `UserError`s naming the keys.
  """
  check_zoo(net)
  family = family or family_of(net)
  if family not in FAMILIES:
    raise UserError(f"unknown family {family!r}; importable families: {list(FAMILIES)}")
  originals = _canonical_keys(state_dict, FAMILIES[family].aliases)
  in_channels = _stem_in_channels(originals, state_dict, FAMILIES[family].links(net))
  # Parameter shapes do not depend on the spatial size: any size that survives every stride works.
  abstract = jax.eval_shape(net.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 32, 32, in_channels), jnp.float32))
  wanted = {(c, *path): leaf for c in ("params", "batch_stats")
            for path, leaf in flatten(abstract.get(c, {}))}
  filled, used, missing = {}, set(), []

  def read(key):
    if key not in originals:
      missing.append(key)
      return None
    used.add(key)
    return np.asarray(state_dict[originals[key]], np.float32)

  for link in FAMILIES[family].links(net):
    for collection, leaf, suffix in LEAVES[link.kind]:
      target = (collection, *link.flax, leaf)
      if target not in wanted:
        continue  # e.g. the option-B shortcut of a net built with option A
      value = read(f"{link.torch}.{suffix}")
      if value is None:
        continue
      if link.kind == "conv":
        value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO; depthwise (C,1,k,k) -> (k,k,1,C)
      elif link.kind == "dense" and leaf == "kernel":
        value = value.T  # (out, in) -> (in, out)
      _check_shape(originals[f"{link.torch}.{suffix}"], value.shape, wanted[target].shape,
                   link.kind, leaf, family)
      if leaf == "mean" and link.fold_bias and link.fold_bias in originals:
        bias = read(link.fold_bias)
        _check_shape(originals[link.fold_bias], bias.shape, value.shape, "bn", leaf, family)
        value = value - bias  # BN(conv + b) with running mean m == BN(conv) with m - b
      filled[target] = value.astype(wanted[target].dtype)
  unexpected = sorted(originals[k] for k in set(originals) - used
                      if not k.endswith(IGNORED_SUFFIXES))
  if missing or unexpected:
    raise UserError(f"the state dict does not fit the {family} network: missing keys "
                    f"{listed(sorted(missing))}; unexpected keys {listed(unexpected)} (check "
                    "the model and its options: depth, shortcut, classifier, width)")
  unmapped = sorted("/".join(t) for t in set(wanted) - set(filled))
  if unmapped:
    raise UserError(f"no PyTorch key maps to the variables {listed(unmapped)} of this {family} "
                    "network; only the zoo teachers' layouts can be imported")
  return _unflatten(filled)


def check_zoo(net: BlockNet) -> None:
  """Compact candidates (skip, slim, dwsep, ...) have no place in a zoo checkpoint's layout."""
  compact = [b.name for b in (net.stem, *net.blocks) if b.kind == "identity" or
             any(dict(b.options).get(k, d) != d for k, d in (("conv_type", "full"),
                                                             ("width_ratio", 1.0),
                                                             ("inner_ratio", 1.0)))]
  if compact:
    raise UserError(f"only zoo teachers map onto a PyTorch zoo layout; blocks {compact} are "
                    "compact candidates that no PyTorch zoo checkpoint has")


def _canonical_keys(state_dict: Mapping[str, Any],
                    aliases: Sequence[tuple[str, str]]) -> dict[str, str]:
  """canonical key -> the key as the state dict spells it."""
  keys = list(state_dict)
  strip = bool(keys) and all(k.startswith("module.") for k in keys)
  alias = dict(aliases)
  out = {}
  for k in keys:
    parts = (k.removeprefix("module.") if strip else k).split(".")
    canonical = ".".join(alias.get(p, p) for p in parts)
    if canonical in out:
      raise UserError(f"the state dict holds both {out[canonical]!r} and {k!r}, which name the "
                      "same tensor; keep one")
    out[canonical] = k
  return out


def _stem_in_channels(originals, state_dict, links: list[Link]) -> int:
  key = f"{links[0].torch}.weight"
  if key not in originals:
    raise UserError(f"the state dict has no stem convolution {key!r}; its keys start with "
                    f"{list(state_dict)[:5]}")
  return int(np.shape(state_dict[originals[key]])[1])


def listed(keys: Sequence[str], limit: int = 12) -> str:
  """Keys for an error message: a wrong depth would otherwise print hundreds of them."""
  more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
  return f"{list(keys[:limit])}{more}"


def _check_shape(key: str, got: tuple, want: tuple, kind: str, leaf: str, family: str) -> None:
  if tuple(got) != tuple(want):
    raise UserError(f"PyTorch key {key!r} has shape {_torch_shape(kind, leaf, got)}; the {family} "
                    f"network needs {_torch_shape(kind, leaf, want)} (check num_classes, width and "
                    "the model options)")


def _torch_shape(kind: str, leaf: str, shape: tuple) -> tuple:
  """A Flax shape written the PyTorch way, for error messages."""
  if kind == "conv":
    return tuple(shape[i] for i in (3, 2, 0, 1))
  return tuple(reversed(shape)) if kind == "dense" and leaf == "kernel" else tuple(shape)


def flatten(tree, prefix=()) -> Iterator[tuple[tuple[str, ...], Any]]:
  for k, v in tree.items():
    if isinstance(v, Mapping):
      yield from flatten(v, (*prefix, k))
    else:
      yield (*prefix, k), v


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict:
  out: dict = {"params": {}, "batch_stats": {}}
  for path, value in flat.items():
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = value
  return out


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """A .pt/.pth file as NumPy arrays; unwraps {"state_dict": ...} and similar training wrappers."""
  import torch  # only here: the rest of compactkd_jax runs without PyTorch installed
  try:
    # weights_only: tensors and plain containers only, so a checkpoint cannot run code on load.
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except FileNotFoundError:
    raise UserError(f"no PyTorch checkpoint at {path}") from None
  except Exception as e:  # pickle and zip errors of many types
    reason = (str(e).splitlines() or [type(e).__name__])[0][:200]  # some errors have no text
    raise UserError(f"cannot read PyTorch checkpoint {path}: {reason}") from None
  for wrapper in ("state_dict", "model", "net"):
    if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
      obj = obj[wrapper]
  if not isinstance(obj, Mapping) or not all(hasattr(v, "shape") for v in obj.values()):
    raise UserError(f"{path} holds no state dict (a whole pickled module cannot be loaded safely); "
                    "save `model.state_dict()` instead")
  return {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
          for k, v in obj.items()}


def import_teacher(state_dict_path: str, model: str, options: Mapping[str, Any],
                   image_shape: Sequence[int], num_classes: int, out_dir: str,
                   mean: Sequence[float], std: Sequence[float]) -> str:
  """Writes a teacher directory (artifacts.save_model) from a PyTorch checkpoint; returns it.

  Use it as `--config.teacher.checkpoint=<out_dir>`. `mean`/`std` are the normalization the
  PyTorch model was trained with (per channel, on images in [0, 1]); they are saved with the
  teacher and every later phase uses them.
  """
  from compactkd_jax import artifacts, feed
  from compactkd_jax.models import get_model
  # Configs carry every family's options (teacher.options): keep the ones this model takes.
  options = zoo.model_options(model, dict(options))
  net = get_model(model, num_classes, **options)
  image_shape = tuple(int(s) for s in image_shape)
  if len(mean) != image_shape[-1] or len(std) != image_shape[-1]:
    raise UserError(f"mean and std need one value per channel ({image_shape[-1]}), got "
                    f"{len(mean)} and {len(std)}")
  variables = torch_state_dict_to_variables(load_state_dict(state_dict_path), net)
  stem_in = variables["params"][net.stem.name]["unit"]["conv"]["kernel"].shape[2]
  if stem_in != image_shape[-1]:
    raise UserError(f"the checkpoint's first conv expects {stem_in}-channel images but "
                    f"image_shape {image_shape} has {image_shape[-1]} channels")
  preprocess = feed.Preprocess(tuple(float(m) for m in mean), tuple(float(s) for s in std))
  artifacts.save_model(out_dir, net, variables, image_shape, num_classes, preprocess,
                       extra={"model": model, "options": options,
                              "source": f"pytorch:{state_dict_path}"})
  return out_dir


def _floats(flag: str, text: str) -> tuple[float, ...]:
  try:
    values = tuple(float(v) for v in text.split(","))
  except ValueError:
    values = ()
  if not values or not all(math.isfinite(v) for v in values):
    raise UserError(f"{flag} takes finite numbers, one per channel (e.g. 0.5,0.5,0.5), "
                    f"got {text!r}")
  return values


def _import_from_flags(args) -> str:
  shape, options = zoo.checked_flags(args)
  mean, std = _floats("--mean", args.mean), _floats("--std", args.std)
  if min(std) <= 0:
    raise UserError(f"--std must be > 0 for every channel, got {args.std}")
  if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
    raise UserError(f"--out_dir {args.out_dir} is a file; give a directory")
  return import_teacher(args.state_dict, args.model, options, shape, args.num_classes,
                        args.out_dir, mean, std)


def main(argv=None):
  import argparse
  p = argparse.ArgumentParser(description="Turn a PyTorch CIFAR zoo checkpoint into a teacher "
                              "directory for --config.teacher.checkpoint.")
  p.add_argument("--state_dict", required=True, help=".pt/.pth file holding a state dict")
  p.add_argument("--model", required=True, help="zoo model: resnet20..110, vgg11..19, mobilenet_v2")
  p.add_argument("--out_dir", required=True)
  p.add_argument("--num_classes", type=int, default=10)
  p.add_argument("--image_shape", default="32,32,3")
  p.add_argument("--mean", default="0.4914,0.4822,0.4465", help="per channel, images in [0, 1]")
  p.add_argument("--std", default="0.2470,0.2435,0.2616")
  zoo.add_option_flags(p)
  args = p.parse_args(argv)
  out = errors.run_cli(_import_from_flags, args, needs="to read a .pth file")
  print(f"teacher written to {out}; use --config.teacher.checkpoint={out}")


if __name__ == "__main__":
  main()
