"""A network as plain data: `stem -> named blocks -> head`, each part a `LayerSpec`.

`BlockNet` runs any contiguous range of blocks and returns `(logits, features)` with features keyed
by block name, so teacher and student share names and a candidate is spliced in by replacing one
spec. A spec round-trips through JSON, which is how an exported student is rebuilt.
"""
import dataclasses
from typing import Any, Mapping

import flax.linen as nn

from compactkd_jax.errors import UserError
from compactkd_jax.models import layers

# Explicit registry of the modules a spec may name. Register your own block here.
LAYERS: dict[str, type[nn.Module]] = {
    "conv": layers.ConvBlock,
    "basic": layers.BasicBlock,
    "inverted_residual": layers.InvertedResidual,
    "identity": layers.Identity,
    "head": layers.Head,
}


def register_layer(kind: str, module: type[nn.Module]) -> None:
  """Adds a Linen module class that specs (and so candidates) may name."""
  LAYERS[kind] = module


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """One named part of a network: a registered module kind and its hashable options."""
  kind: str
  name: str
  options: tuple[tuple[str, Any], ...] = ()

  @classmethod
  def make(cls, kind: str, name: str, **options) -> "LayerSpec":
    return cls(kind, name, tuple(sorted((k, _hashable(v)) for k, v in options.items())))

  def replace(self, kind: str | None = None, **options) -> "LayerSpec":
    return LayerSpec.make(kind or self.kind, self.name, **{**dict(self.options), **options})

  def build(self) -> nn.Module:
    if self.kind not in LAYERS:
      raise UserError(f"unknown layer kind {self.kind!r}; registered kinds: {sorted(LAYERS)}")
    return LAYERS[self.kind](name=self.name, **dict(self.options))

  def to_json(self) -> dict:
    return {"kind": self.kind, "name": self.name, "options": dict(self.options)}

  @classmethod
  def from_json(cls, d: Mapping) -> "LayerSpec":
    return cls.make(d["kind"], d["name"], **d["options"])


def _hashable(v):
  return tuple(_hashable(x) for x in v) if isinstance(v, (list, tuple)) else v


class BlockNet(nn.Module):
  """stem -> blocks -> head. `first`/`last` name the blocks to run (inclusive); with `first` set
  the input is the feature map entering that block, with `last` set no logits are computed."""
  stem: LayerSpec
  blocks: tuple[LayerSpec, ...]
  head: LayerSpec

  @property
  def block_names(self) -> tuple[str, ...]:
    return tuple(b.name for b in self.blocks)

  @nn.compact
  def __call__(self, x, train: bool = False, first: str | None = None, last: str | None = None):
    names = self.block_names
    # first == head name: the input is the last block's output and only the head runs.
    start = 0 if first is None else len(names) if first == self.head.name else names.index(first)
    # last == stem name: only the stem runs (the input of the first block).
    stop = len(names) if last is None else 0 if last == self.stem.name else names.index(last) + 1
    features = {}
    if first is None:
      x = features[self.stem.name] = self.stem.build()(x, train)
    elif first != self.head.name and first not in names:
      raise ValueError(f"unknown block {first!r}; blocks: {names}")
    for spec in self.blocks[start:stop]:
      x = features[spec.name] = spec.build()(x, train)
    logits = self.head.build()(x, train) if last is None else None
    if logits is None and first is not None and first == self.head.name:
      raise ValueError("first=head runs only the head: leave last unset")
    return logits, features

  def with_blocks(self, replacements: Mapping[str, LayerSpec]) -> "BlockNet":
    """The same network with some blocks swapped (the student, or a hybrid)."""
    # parent=None: a method of an unbound Linen module would otherwise try to adopt the new module.
    return BlockNet(self.stem, tuple(replacements.get(b.name, b) for b in self.blocks), self.head,
                    parent=None)

  def to_json(self) -> dict:
    return {"stem": self.stem.to_json(), "blocks": [b.to_json() for b in self.blocks],
            "head": self.head.to_json()}

  @classmethod
  def from_json(cls, d: Mapping) -> "BlockNet":
    return cls(LayerSpec.from_json(d["stem"]), tuple(LayerSpec.from_json(b) for b in d["blocks"]),
               LayerSpec.from_json(d["head"]))
