"""The menu of compact replacements for a teacher block, derived from the block's spec and shapes.

Every candidate maps the block's input shape to its output shape, so it can be spliced in. The menu
is an explicit registry: name -> function(teacher_spec, in_shape, out_shape) returning a `LayerSpec`
or None where the candidate does not apply. To add your own, write a Linen module, register it with
`net.register_layer`, and add a builder here with `register_candidate`.
"""
from typing import Callable, Sequence

from compactkd_jax.errors import UserError
from compactkd_jax.models.net import LayerSpec

Shape = Sequence[int]
Builder = Callable[[LayerSpec, Shape, Shape], LayerSpec | None]

RESIDUAL_KINDS = ("basic", "inverted_residual")
SLIM_RATIOS = (0.25, 0.5, 0.75)
# Inner widths in eighths: what structured pruning removes, fine enough that the knapsack can land a
# plan near a budget without skipping blocks (the default menus name only the quarters).
INNER_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875)


def _keep(spec, in_shape, out_shape):
  return spec


def _dwsep(spec, in_shape, out_shape):
  opts = dict(spec.options)
  if spec.kind == "basic" or (spec.kind == "conv" and opts.get("kernel", 3) > 1):
    return spec.replace(conv_type="dwsep")
  return None


def _slim(ratio: float) -> Builder:
  def build(spec, in_shape, out_shape):
    if spec.kind in ("conv", "basic", "inverted_residual"):
      return spec.replace(width_ratio=ratio)
    return None
  return build


def _inner(ratio: float) -> Builder:
  """Narrows only the channels inside a basic block (what structured pruning removes); other kinds
  have no such inner width apart from the one slim already narrows (MobileNetV2's expansion)."""
  def build(spec, in_shape, out_shape):
    if spec.kind == "basic":
      return spec.replace(inner_ratio=ratio)
    return None
  return build


def _stride(in_shape: Shape, out_shape: Shape) -> int | None:
  """1 or 2 where a 3x3 conv with padding 1 maps in_shape's grid onto out_shape's; else None."""
  if in_shape[:2] == out_shape[:2]:
    return 1
  if all(o == (i + 1) // 2 for i, o in zip(in_shape[:2], out_shape[:2])):
    return 2
  return None


def _inverted_residual(expansion: int) -> Builder:
  def build(spec, in_shape, out_shape):
    stride = _stride(in_shape, out_shape)
    if stride is None:
      return None
    if spec.kind == "inverted_residual" and expansion >= dict(spec.options).get("expansion", 6):
      return None  # for MobileNetV2 blocks only a lower expansion is a compact replacement
    return LayerSpec.make("inverted_residual", spec.name, features=out_shape[-1], stride=stride,
                          expansion=expansion)
  return build


def _skip(spec, in_shape, out_shape):
  if spec.kind in RESIDUAL_KINDS and tuple(in_shape) == tuple(out_shape):
    return LayerSpec.make("identity", spec.name)
  return None


CANDIDATES: dict[str, Builder] = {
    "keep": _keep,
    "dwsep": _dwsep,
    **{f"slim_{r}": _slim(r) for r in SLIM_RATIOS},
    **{f"inner_{r}": _inner(r) for r in INNER_RATIOS},
    **{f"ir_{t}": _inverted_residual(t) for t in (1, 2, 3, 6)},
    "skip": _skip,
}


def register_candidate(name: str, builder: Builder) -> None:
  CANDIDATES[name] = builder


def menu(spec: LayerSpec, in_shape: Shape, out_shape: Shape,
         names: Sequence[str]) -> dict[str, LayerSpec]:
  """The candidates among `names` that apply to this block; `keep` is always included.
  (blockwise.menu drops those that save neither MACs nor parameters.)"""
  in_shape = tuple(in_shape)
  unknown = [n for n in names if n not in CANDIDATES]
  if unknown:
    raise UserError(f"unknown candidate(s) {unknown}; valid candidates: {list(CANDIDATES)}")
  out = {"keep": spec}
  for name in names:
    cand = CANDIDATES[name](spec, in_shape, out_shape)
    if cand is not None and cand != spec:
      out[name] = cand
  return out
