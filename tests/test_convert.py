"""Tests for compactkd_jax.convert: PyTorch zoo teachers (scripts/torch_baseline/models.py) with
random weights and random BN statistics, converted, give PyTorch's logits on real Fashion-MNIST
images; state dicts that do not fit are UserErrors naming the keys; import_teacher writes a
teacher directory that loads back."""
import json
import os

import jax
import numpy as np
import pytest

from torch_reference import models as tm, real_images, to_nchw, torch
from compactkd_jax import artifacts, convert
from compactkd_jax.errors import UserError
from compactkd_jax.models import get_model

TOLERANCE = 1e-4

# (model, options, image shape, extra options of the PyTorch model only)
CASES = [
    ("resnet20", {"shortcut": "A"}, (32, 32, 3), {}),
    # 28 -> 14 -> 7: the stride-2 convs and the 1x1 stride-2 shortcut on real 28x28 images.
    ("resnet20", {"shortcut": "B"}, (28, 28, 1), {}),
    ("vgg11", {"classifier": "single"}, (32, 32, 3), {}),
    ("vgg11", {"classifier": "zoo"}, (32, 32, 3), {}),
    ("vgg16", {"classifier": "single"}, (32, 32, 3), {}),
    # Odd maps under the pools (7 -> 4 -> 2 -> 1): Flax's 'SAME' pool is PyTorch's ceil_mode.
    ("vgg11", {"classifier": "single"}, (28, 28, 1), {"ceil_mode": True}),
    ("mobilenet_v2", {}, (32, 32, 3), {}),
    # 28 -> 14 -> 7 -> 4: a stride-2 depthwise conv on an odd (7x7) map catches asymmetric padding.
    ("mobilenet_v2", {}, (28, 28, 1), {}),
]


def randomize(model: torch.nn.Module, x: np.ndarray, seed: int = 0) -> torch.nn.Module:
  """Random weights and BN statistics like a trained network's: He-normal convs, conv biases (so
  the VGG bias folding matters), random BN affine parameters, running statistics measured on `x`
  and then perturbed (so eval-mode BN matters and activations stay of order one, as do the logits).
  Returns the model in eval mode."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.Conv2d):
        m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5, generator=g)
        if m.bias is not None:
          m.bias.normal_(0.0, 0.2, generator=g)
      elif isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5, generator=g)
        m.bias.normal_(0.0, 0.2, generator=g)
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives exactly its statistics
      elif isinstance(m, torch.nn.Linear):
        m.weight.normal_(0.0, 2.0 / m.in_features ** 0.5, generator=g)
        m.bias.normal_(0.0, 0.2, generator=g)
    model.train()(to_nchw(x))
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) *
                            m.running_var.sqrt() * 0.2)
        m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.7, 1.4, generator=g))
  return model.eval()


def numpy_state_dict(model: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.numpy() for k, v in model.state_dict().items()}


def _id(case):
  name, options, shape, extra = case
  return "-".join([name, *map(str, options.values()), "x".join(map(str, shape)), *extra])


@pytest.mark.parametrize("name,options,shape,torch_options", CASES, ids=map(_id, CASES))
def test_converted_zoo_teacher_matches_pytorch(fmnist_dir, name, options, shape, torch_options):
  x = real_images(fmnist_dir, shape)
  model = randomize(tm.zoo_model(name, 10, in_channels=shape[-1], **options, **torch_options), x)
  with torch.no_grad():
    expected = model(to_nchw(x)).numpy()
  net = get_model(name, 10, **options)
  variables = convert.torch_state_dict_to_variables(numpy_state_dict(model), net)
  apply = jax.jit(lambda v, x: net.apply(v, x)[0])
  got = np.asarray(apply(variables, x))
  assert np.abs(got - expected).max() <= TOLERANCE
  # The check could fail: logits are of order one, differ between images, and dropping the BN
  # running statistics (same compiled program, other values) moves them far beyond the tolerance.
  assert 0.5 < np.abs(expected).max() < 100 and np.ptp(expected, axis=0).min() > 1e-2
  plain = jax.tree_util.tree_map_with_path(
      lambda p, v: np.zeros_like(v) if p[-1].key == "mean" else np.ones_like(v),
      variables["batch_stats"])
  assert np.abs(np.asarray(apply({**variables, "batch_stats": plain}, x)) - expected).max() > 0.1


def test_vgg_conv_bias_folds_into_bn_mean(fmnist_dir):
  model = randomize(tm.zoo_model("vgg11", 10), real_images(fmnist_dir, (32, 32, 3)))
  state = numpy_state_dict(model)
  variables = convert.torch_state_dict_to_variables(state, get_model("vgg11", 10))
  np.testing.assert_allclose(variables["batch_stats"]["conv1"]["unit"]["bn"]["mean"],
                             state["features.5.running_mean"] - state["features.4.bias"])
  # A zoo built with bias=False has no bias keys: the means are taken as they are.
  no_bias = {k: v for k, v in state.items()
             if not (k.endswith(".bias") and state[k[:-len("bias")] + "weight"].ndim == 4)}
  plain = convert.torch_state_dict_to_variables(no_bias, get_model("vgg11", 10))
  np.testing.assert_array_equal(plain["batch_stats"]["conv1"]["unit"]["bn"]["mean"],
                                state["features.5.running_mean"])


def test_layout_conversions(fmnist_dir):
  model = randomize(tm.zoo_model("mobilenet_v2", 10, width=0.5),
                    real_images(fmnist_dir, (32, 32, 3)))
  state = numpy_state_dict(model)
  v = convert.torch_state_dict_to_variables(state, get_model("mobilenet_v2", 10, width=0.5))
  p = v["params"]
  # conv OIHW -> HWIO; depthwise (C, 1, 3, 3) -> (3, 3, 1, C); linear (out, in) -> (in, out).
  np.testing.assert_array_equal(p["stem"]["unit"]["conv"]["kernel"],
                                state["features.0.0.weight"].transpose(2, 3, 1, 0))
  dw = p["stage2_block0"]["dw"]["kernel"]
  assert state["features.2.conv.1.0.weight"].shape == (dw.shape[-1], 1, 3, 3)
  assert dw.shape == (3, 3, 1, dw.shape[-1])
  np.testing.assert_array_equal(dw[1, 2, 0, 5], state["features.2.conv.1.0.weight"][5, 0, 1, 2])
  np.testing.assert_array_equal(p["head"]["classifier"]["kernel"], state["classifier.1.weight"].T)
  np.testing.assert_array_equal(v["batch_stats"]["stage1_block0"]["dw_bn"]["var"],
                                state["features.1.conv.0.1.running_var"])


@pytest.fixture(scope="module")
def resnet_state(fmnist_dir):
  model = tm.zoo_model("resnet20", 10, shortcut="B", in_channels=1)
  return numpy_state_dict(randomize(model, real_images(fmnist_dir, (28, 28, 1))))


def test_missing_and_unexpected_keys_are_named(resnet_state):
  state = dict(resnet_state)
  del state["layer2.0.bn1.running_var"]
  state["layer9.0.conv1.weight"] = np.zeros((64, 64, 3, 3), np.float32)
  with pytest.raises(UserError) as e:
    convert.torch_state_dict_to_variables(state, get_model("resnet20", 10, shortcut="B"))
  assert "layer2.0.bn1.running_var" in str(e.value) and "layer9.0.conv1.weight" in str(e.value)


def test_wrong_options_are_user_errors(resnet_state):
  # An option-B checkpoint into an option-A network: the shortcut convs are unexpected.
  with pytest.raises(UserError, match=r"layer2\.0\.shortcut\.0\.weight"):
    convert.torch_state_dict_to_variables(resnet_state, get_model("resnet20", 10, shortcut="A"))
  with pytest.raises(UserError, match=r"'fc\.weight' has shape \(10, 64\).*\(7, 64\)"):
    convert.torch_state_dict_to_variables(resnet_state, get_model("resnet20", 7, shortcut="B"))
  with pytest.raises(UserError, match=r"missing keys \['layer1\.3\.bn1\.bias'.* and 48 more"):
    convert.torch_state_dict_to_variables(resnet_state, get_model("resnet32", 10, shortcut="B"))
  # A student (candidate blocks) has variables no zoo checkpoint provides.
  net = get_model("resnet20", 10, shortcut="B")
  student = net.with_blocks({"stage1_block0": net.blocks[0].replace(width_ratio=0.5)})
  with pytest.raises(UserError, match=r"only zoo teachers.*stage1_block0"):
    convert.torch_state_dict_to_variables(resnet_state, student)


def test_data_parallel_prefix_and_other_zoo_names_are_accepted(resnet_state):
  # akamaster saves nn.DataParallel models ("module." prefix) with a `linear` head; chenyaofo
  # names the option-B shortcut `downsample`.
  renamed = {"module." + k.replace("fc.", "linear.").replace("shortcut", "downsample"): v
             for k, v in resnet_state.items()}
  net = get_model("resnet20", 10, shortcut="B")
  a = convert.torch_state_dict_to_variables(resnet_state, net)
  b = convert.torch_state_dict_to_variables(renamed, net)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_import_teacher_writes_a_loadable_teacher(tmp_path, resnet_state):
  path = str(tmp_path / "resnet20.pth")
  # akamaster's checkpoint layout: the state dict inside a training dict.
  torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in resnet_state.items()},
              "best_prec1": 91.2}, path)
  out = str(tmp_path / "teacher")
  # Configs carry every family's options: the ones resnet20 does not take are dropped.
  convert.import_teacher(path, "resnet20", {"shortcut": "B", "classifier": "single", "width": 1.0},
                         (28, 28, 1), 10, out, (0.286,), (0.353,))
  net, variables, spec = artifacts.load_model(out)
  assert net == get_model("resnet20", 10, shortcut="B")
  assert spec["preprocess"] == {"mean": [0.286], "std": [0.353]}
  assert spec["options"] == {"shortcut": "B", "width": 1.0}
  expected = convert.torch_state_dict_to_variables(resnet_state, net)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(variables), expected)
  with open(os.path.join(out, artifacts.SPEC_FILE)) as f:
    assert json.load(f)["image_shape"] == [28, 28, 1]
  with pytest.raises(UserError, match="expects 1-channel images"):
    convert.import_teacher(path, "resnet20", {"shortcut": "B"}, (32, 32, 3), 10,
                           str(tmp_path / "bad"), (0.5,) * 3, (0.25,) * 3)
  with pytest.raises(UserError, match="no PyTorch checkpoint"):
    convert.import_teacher(str(tmp_path / "nope.pth"), "resnet20", {}, (28, 28, 1), 10,
                           str(tmp_path / "bad"), (0.5,), (0.25,))
