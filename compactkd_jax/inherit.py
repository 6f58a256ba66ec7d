"""Weight inheritance: narrower candidates start from the teacher block's strongest channels
instead of random weights (`distill.inherit`), as structured pruning starts from the trained
network (Torch-Pruning's magnitude importance: the channels whose BN-folded kernels have the
largest L2 norm).

- `slim_r` of a CIFAR ResNet basic block: unit1 keeps its strongest r*F output channels S; unit2
  takes S as input and keeps its strongest r*F outputs T; the restore 1x1 conv puts T back at their
  places (a selection matrix) and its BN undoes unit2's normalization, so at the start the block is
  the teacher block with the weak channels of both convs removed.
- `inner_r` of a CIFAR ResNet basic block: unit1 keeps its strongest r*F output channels S; unit2
  takes S as input and keeps every output and its BN: exactly the block structured pruning leaves
  (Torch-Pruning removes the same coupled channels of a basic block).
- `slim_r` of a MobileNetV2 block: the expand conv keeps its strongest outputs S, the depthwise
  conv and its BN keep S, the project conv takes S as input: exactly the pruned block.

Other candidates (and slim VGG blocks, low-rank 1x1s) keep their random initialization.
"""
import jax
import numpy as np

from compactkd_jax.models import layers
from compactkd_jax.models.net import LayerSpec


def _strongest(kernel: np.ndarray, bn_params: dict, bn_stats: dict, count: int) -> np.ndarray:
  """The `count` output channels with the largest BN-folded kernel norm, in their order."""
  norm = np.sqrt((kernel.reshape(-1, kernel.shape[-1]) ** 2).sum(0))
  norm = norm * np.abs(bn_params["scale"]) / np.sqrt(bn_stats["var"] + layers.BN_EPSILON)
  return np.sort(np.argsort(-norm, kind="stable")[:count])


def _bn(params: dict, stats: dict, keep: np.ndarray):
  return ({k: v[keep] for k, v in params.items()}, {k: v[keep] for k, v in stats.items()})


def _basic(tp: dict, ts: dict, cp: dict, cs: dict) -> tuple[dict, dict]:
  if "restore" not in cp:
    return _basic_inner(tp, ts, cp, cs)
  inner = cp["unit1"]["conv"]["kernel"].shape[-1]
  s = _strongest(tp["unit1"]["conv"]["kernel"], tp["unit1"]["bn"], ts["unit1"]["bn"], inner)
  k2 = tp["unit2"]["conv"]["kernel"][:, :, s, :]
  t = _strongest(k2, tp["unit2"]["bn"], ts["unit2"]["bn"], inner)
  p, st = {**cp}, {**cs}
  bn1 = _bn(tp["unit1"]["bn"], ts["unit1"]["bn"], s)
  p["unit1"] = {"conv": {"kernel": tp["unit1"]["conv"]["kernel"][..., s]}, "bn": bn1[0]}
  st["unit1"] = {"bn": bn1[1]}
  bn2 = _bn(tp["unit2"]["bn"], ts["unit2"]["bn"], t)
  p["unit2"] = {"conv": {"kernel": k2[..., t]}, "bn": bn2[0]}
  st["unit2"] = {"bn": bn2[1]}
  features = tp["unit2"]["conv"]["kernel"].shape[-1]
  select = np.zeros((1, 1, inner, features), np.float32)
  select[0, 0, np.arange(inner), t] = 1.0
  # unit2's BN gives scale * xhat + bias; the restore BN sees that (per channel: mean ~ bias,
  # std ~ |scale|) and gives it back: (z - bias) / |scale| * |scale| + bias = z in inference.
  scale, bias = np.zeros(features, np.float32), np.zeros(features, np.float32)
  mean, var = np.zeros(features, np.float32), np.ones(features, np.float32)
  scale[t], bias[t] = np.abs(bn2[0]["scale"]), bn2[0]["bias"]
  mean[t] = bn2[0]["bias"]
  var[t] = np.maximum(bn2[0]["scale"] ** 2 - layers.BN_EPSILON, 1e-6)
  p["restore"] = {"conv": {"kernel": select}, "bn": {"scale": scale, "bias": bias}}
  st["restore"] = {"bn": {"mean": mean, "var": var}}
  if "shortcut_conv" in tp:  # shortcut B: the block's input and output are unchanged
    p["shortcut_conv"], p["shortcut_bn"] = tp["shortcut_conv"], tp["shortcut_bn"]
    st["shortcut_bn"] = ts["shortcut_bn"]
  return p, st


def _basic_inner(tp: dict, ts: dict, cp: dict, cs: dict) -> tuple[dict, dict]:
  middle = cp["unit1"]["conv"]["kernel"].shape[-1]
  s = _strongest(tp["unit1"]["conv"]["kernel"], tp["unit1"]["bn"], ts["unit1"]["bn"], middle)
  bn1 = _bn(tp["unit1"]["bn"], ts["unit1"]["bn"], s)
  p = {**tp, "unit1": {"conv": {"kernel": tp["unit1"]["conv"]["kernel"][..., s]}, "bn": bn1[0]},
       "unit2": {"conv": {"kernel": tp["unit2"]["conv"]["kernel"][:, :, s, :]},
                 "bn": tp["unit2"]["bn"]}}
  return p, {**ts, "unit1": {"bn": bn1[1]}}


def _inverted_residual(tp: dict, ts: dict, cp: dict, cs: dict) -> tuple[dict, dict]:
  if "expand" not in tp or "expand" not in cp:
    return cp, cs
  inner = cp["expand"]["conv"]["kernel"].shape[-1]
  s = _strongest(tp["expand"]["conv"]["kernel"], tp["expand"]["bn"], ts["expand"]["bn"], inner)
  bn_e, bn_d = _bn(tp["expand"]["bn"], ts["expand"]["bn"], s), _bn(tp["dw_bn"], ts["dw_bn"], s)
  p = {"expand": {"conv": {"kernel": tp["expand"]["conv"]["kernel"][..., s]}, "bn": bn_e[0]},
       "dw": {k: v[..., s] for k, v in tp["dw"].items()}, "dw_bn": bn_d[0],
       "project": {"conv": {"kernel": tp["project"]["conv"]["kernel"][:, :, s, :]},
                   "bn": tp["project"]["bn"]}}
  st = {"expand": {"bn": bn_e[1]}, "dw_bn": bn_d[1], "project": ts["project"]}
  return p, st


_INHERIT = {"basic": _basic, "inverted_residual": _inverted_residual}


def applies(spec: LayerSpec, teacher_spec: LayerSpec) -> bool:
  """A narrower copy of the teacher block: same kind and options but width_ratio < 1 (slim) or
  inner_ratio < 1 (inner)."""
  if spec.kind not in _INHERIT or spec.kind != teacher_spec.kind:
    return False
  opts, teacher_opts = dict(spec.options), dict(teacher_spec.options)
  ratios = [opts.pop(k, 1.0) for k in ("width_ratio", "inner_ratio")]
  for k in ("width_ratio", "inner_ratio"):
    teacher_opts.pop(k, None)
  return min(ratios) < 1.0 and opts == teacher_opts


def from_teacher(variables: dict, menus, teacher_blocks: dict, teacher_vars: dict) -> dict:
  """`variables` ({"params"|"batch_stats": {block: {candidate: tree}}}) with every applicable
  candidate replaced by the teacher's strongest channels; shapes are unchanged."""
  host = jax.device_get(teacher_vars)
  out = {c: {b: dict(v) for b, v in variables[c].items()} for c in ("params", "batch_stats")}
  for block, cands in menus:
    tp = jax.tree.map(np.asarray, host["params"].get(block, {}))
    ts = jax.tree.map(np.asarray, host.get("batch_stats", {}).get(block, {}))
    for name, spec in cands:
      if not applies(spec, teacher_blocks[block]):
        continue
      cp = jax.tree.map(np.asarray, variables["params"][block][name])
      cs = jax.tree.map(np.asarray, variables["batch_stats"][block][name])
      p, st = _INHERIT[spec.kind](tp, ts, cp, cs)
      shapes = lambda tree: jax.tree.map(np.shape, tree)
      assert shapes(p) == shapes(cp) and shapes(st) == shapes(cs), (block, name)
      out["params"][block][name], out["batch_stats"][block][name] = p, st
  return out
