"""Weight inheritance (compactkd_jax/inherit.py): an inherited slim or inner candidate computes
exactly what the teacher block computes with its weak channels switched off (their BN scale and bias
set to 0, an independent way to prune), for ResNet basic blocks (both shortcuts, stride 1 and 2,
negative BN scales) and MobileNetV2 blocks; the channels kept are the largest BN-folded norms."""
import jax
import numpy as np
import pytest

from compactkd_jax import inherit
from compactkd_jax.models import candidates
from compactkd_jax.models.net import LayerSpec
from test_models import _random_variables


def _masked(params, path, keep):
  """A copy of params with BN scale and bias 0 outside `keep` at params[path...]."""
  params = jax.tree.map(np.array, params)
  node = params
  for part in path:
    node = node[part]
  off = np.setdiff1d(np.arange(node["scale"].shape[0]), keep)
  node["scale"][off] = 0.0
  node["bias"][off] = 0.0
  return params


@pytest.mark.parametrize("spec,in_shape", [
    (LayerSpec.make("basic", "b", features=16, stride=1, shortcut="A"), (8, 8, 16)),
    (LayerSpec.make("basic", "b", features=32, stride=2, shortcut="A"), (8, 8, 16)),
    (LayerSpec.make("basic", "b", features=32, stride=2, shortcut="B"), (8, 8, 16)),
    (LayerSpec.make("inverted_residual", "b", features=16, stride=1, expansion=6), (8, 8, 16)),
    (LayerSpec.make("inverted_residual", "b", features=24, stride=2, expansion=6), (8, 8, 16))],
    ids=["basic-A", "basic-A-stride2", "basic-B-stride2", "ir", "ir-stride2"])
@pytest.mark.parametrize("kind,ratio", [("slim", 0.25), ("slim", 0.5), ("inner", 0.25),
                                        ("inner", 0.5), ("inner", 0.625)])
def test_inherited_slim_is_the_pruned_teacher_block(spec, in_shape, ratio, kind):
  if kind == "inner" and spec.kind != "basic":
    assert candidates.CANDIDATES[f"inner_{ratio}"](spec, in_shape, None) is None
    return  # MobileNetV2's inner width is the expansion, which slim already narrows
  teacher = jax.tree.map(np.array, _random_variables(spec.build(), in_shape, seed=1))
  # Negative BN scales on every third channel: the restore must keep their sign.
  flip = lambda path, v: (np.where(np.arange(v.shape[0]) % 3 == 0, -v, v)
                          if jax.tree_util.keystr(path).endswith("['scale']") else v)
  teacher["params"] = jax.tree_util.tree_map_with_path(flip, teacher["params"])
  name = f"{kind}_{ratio}"
  cand = candidates.CANDIDATES[name](spec, in_shape, None)
  random = _random_variables(cand.build(), in_shape, seed=2)
  menus = [("b", [(name, cand)])]
  wrap = lambda v: {c: {"b": {name: v[c]}} for c in ("params", "batch_stats")}
  got = inherit.from_teacher(wrap(random), menus, {"b": spec},
                             {c: {"b": teacher[c]} for c in ("params", "batch_stats")})
  child = {c: got[c]["b"][name] for c in ("params", "batch_stats")}
  x = np.random.default_rng(0).normal(size=(2, *in_shape)).astype(np.float32)
  out = np.asarray(cand.build().apply(child, x, False))
  tp, ts = teacher["params"], teacher["batch_stats"]
  if spec.kind == "basic":
    inner = child["params"]["unit1"]["conv"]["kernel"].shape[-1]
    s = inherit._strongest(tp["unit1"]["conv"]["kernel"], tp["unit1"]["bn"], ts["unit1"]["bn"],
                           inner)
    masked = _masked(tp, ("unit1", "bn"), s)
  if spec.kind == "basic" and kind == "slim":
    t = inherit._strongest(tp["unit2"]["conv"]["kernel"][:, :, s, :], tp["unit2"]["bn"],
                           ts["unit2"]["bn"], inner)
    masked = _masked(masked, ("unit2", "bn"), t)
  elif kind == "inner":  # unit2 keeps the block's every output: nothing else is switched off
    features = dict(spec.options)["features"]
    assert child["params"]["unit2"]["conv"]["kernel"].shape[-2:] == (inner, features)
    assert inner == round(features * ratio) and "restore" not in child["params"]
  else:
    inner = child["params"]["expand"]["conv"]["kernel"].shape[-1]
    s = inherit._strongest(tp["expand"]["conv"]["kernel"], tp["expand"]["bn"],
                           ts["expand"]["bn"], inner)
    masked = _masked(_masked(tp, ("expand", "bn"), s), ("dw_bn",), s)
  assert len(s) == inner
  expected = np.asarray(spec.build().apply({"params": masked, "batch_stats": ts}, x, False))
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  assert np.abs(expected).max() > 1e-2  # the block is not trivially zero


def test_strongest_channels_are_the_largest_folded_norms():
  kernel = np.zeros((1, 1, 2, 4), np.float32)
  kernel[0, 0, 0] = [1.0, 3.0, 2.0, 0.5]
  bn = {"scale": np.array([1.0, 0.1, -2.0, 1.0]), "bias": np.zeros(4)}
  stats = {"mean": np.zeros(4), "var": np.ones(4)}
  # folded norms: 1, 0.3, 4, 0.5 -> the two largest are channels 2 and 0, in channel order
  assert list(inherit._strongest(kernel, bn, stats, 2)) == [0, 2]


def test_only_narrower_copies_of_the_teacher_block_inherit():
  block = LayerSpec.make("basic", "b", features=16, stride=1, shortcut="A")
  assert inherit.applies(block.replace(width_ratio=0.5), block)
  assert inherit.applies(block.replace(inner_ratio=0.5), block)
  assert not inherit.applies(block, block)
  assert not inherit.applies(block.replace(width_ratio=0.5, conv_type="dwsep"), block)
  assert not inherit.applies(LayerSpec.make("identity", "b"), block)
