"""Tests for compactkd_jax.export_torch (variables_to_torch_state_dict and the CLI), the way out to
PyTorch: Flax teachers of every family (with BN statistics unlike the init's) exported into the zoo
modules of scripts/torch_baseline/models.py give the Flax logits on real Fashion-MNIST images,
importing the export gives back the same variables, and bad input is one line that writes
nothing."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO_ROOT, run_python
from test_convert import randomize
from torch_reference import models as tm, real_images, to_nchw, torch
from compactkd_jax import artifacts, convert, data, export_torch, feed
from compactkd_jax.errors import UserError
from compactkd_jax.models import get_model

TOLERANCE = 1e-4
COMMITTED_TEACHER = os.path.join(REPO_ROOT, "teachers", "fashion_mnist_resnet20_w0.5")

# (model, options, image shape): the three families, both ResNet shortcuts, odd maps under the VGG
# pools (28 -> 14 -> 7 -> 4) and a stride-2 depthwise conv on a 7x7 map.
CASES = [
    ("resnet20", {"shortcut": "A", "width": 0.5}, (28, 28, 1)),
    ("resnet20", {"shortcut": "B"}, (28, 28, 1)),
    ("vgg11", {"classifier": "zoo", "width": 0.5}, (28, 28, 1)),
    ("mobilenet_v2", {"width": 0.5}, (32, 32, 3)),
]


def trained_like_variables(name, options, torch_options, x) -> dict:
  """Flax variables with statistics like a trained network's: test_convert's randomized zoo module
  (He-normal weights, random BN affine parameters and running statistics of real images),
  imported. Flax's own init with random BN statistics gives a MobileNetV2 whose logits hardly
  depend on the image, which no export bug could disturb."""
  model = randomize(tm.zoo_model(name, 10, **torch_options), x)
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  return convert.torch_state_dict_to_variables(state, get_model(name, 10, **options))


@pytest.mark.parametrize("name,options,shape", CASES,
                         ids=[f"{c[0]}-{'-'.join(map(str, c[1].values()))}" for c in CASES])
def test_exported_teacher_gives_flax_logits_and_round_trips(fmnist_dir, name, options, shape):
  net = get_model(name, 10, **options)
  x = real_images(fmnist_dir, shape)
  torch_options = export_torch.torch_options(
      {"model": name, "options": options, "image_shape": list(shape)})
  variables = trained_like_variables(name, options, torch_options, x)
  state = export_torch.variables_to_torch_state_dict(variables, net)
  model = tm.zoo_model(name, 10, **torch_options)  # a fresh module
  # strict: every key of the zoo module is written, none is extra.
  model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  with torch.no_grad():
    got = model.eval()(to_nchw(x)).numpy()
  expected = np.asarray(jax.jit(lambda v, x: net.apply(v, x)[0])(variables, x))
  assert np.abs(got - expected).max() <= TOLERANCE
  assert np.ptp(expected, axis=0).min() > 1e-2  # logits that differ between images
  back = convert.torch_state_dict_to_variables(state, net)
  jax.tree.map(np.testing.assert_array_equal, back, variables)


def test_committed_teacher_through_the_cli(fmnist_dir, tmp_path):
  """The real trained quickstart teacher: the .pth in the zoo ResNet gives its logits and
  accuracy."""
  out = str(tmp_path / "r20.pth")
  proc = run_python(["-m", "compactkd_jax.export_torch", "--teacher", COMMITTED_TEACHER,
                     "--out", out])
  assert proc.returncode == 0, proc.stderr
  description = export_torch.load_description(out)
  assert description["model"] == "resnet20" and description["image_shape"] == [28, 28, 1]
  model = tm.zoo_model("resnet20", description["num_classes"], **description["torch_options"])
  model.load_state_dict(torch.load(out, weights_only=True), strict=True)
  net, variables, spec = artifacts.load_model(COMMITTED_TEACHER)
  pre = artifacts.preprocess_of(spec)
  test = data.load_idx_split(fmnist_dir, "test").take(500)
  x = np.array(pre(jnp.asarray(test.images)))  # writable, as torch.from_numpy wants
  expected = np.asarray(jax.jit(lambda v, x: net.apply(v, x)[0])(variables, x))
  with torch.no_grad():
    got = model.eval()(to_nchw(x)).numpy()
  assert np.abs(got - expected).max() <= TOLERANCE
  assert (got.argmax(1) == test.labels).mean() > 0.85  # a trained teacher, not a random one


def test_workdir_without_teacher_is_one_line_and_writes_nothing(tmp_path):
  out = tmp_path / "t.pth"
  proc = run_python(["-m", "compactkd_jax.export_torch", "--teacher", str(tmp_path),
                     "--out", str(out)])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("error: no finished teacher in")
  assert not os.listdir(tmp_path)


def test_student_and_unknown_family_are_refused(tmp_path):
  net = get_model("resnet20", 10, width=0.25)
  student = net.with_blocks({"stage1_block1": net.blocks[1].replace(width_ratio=0.5)})
  variables = jax.device_get(student.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
  pre = feed.Preprocess((0.3,), (0.3,))
  artifacts.save_model(str(tmp_path / "student"), student, variables, (28, 28, 1), 10, pre,
                       extra={"model": "resnet20", "options": {"width": 0.25}})
  with pytest.raises(UserError, match=r"only zoo teachers.*stage1_block1"):
    export_torch.export_teacher(str(tmp_path / "student"), str(tmp_path / "s.pth"))
  artifacts.save_model(str(tmp_path / "imported"), net, jax.device_get(
      net.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))), (28, 28, 1), 10, pre)
  with pytest.raises(UserError, match=r"not a zoo teacher.*exportable families"):
    export_torch.export_teacher(str(tmp_path / "imported"), str(tmp_path / "i.pth"))
  assert not [f for f in os.listdir(tmp_path) if f.endswith((".pth", ".json"))]


def test_out_that_is_a_folder_and_a_student_through_the_cli(tmp_path):
  (tmp_path / "out").mkdir()
  proc = run_python(["-m", "compactkd_jax.export_torch", "--teacher", COMMITTED_TEACHER,
                     "--out", str(tmp_path / "out")])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "is a directory; give a file name" in proc.stderr.strip().splitlines()[-1]
  assert not os.listdir(tmp_path / "out")
  net = get_model("resnet20", 10, width=0.25)
  student = net.with_blocks({"stage2_block1": net.blocks[4].replace(width_ratio=0.5)})
  artifacts.save_model(str(tmp_path / "student"), student, jax.device_get(
      student.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))), (28, 28, 1), 10,
      feed.Preprocess((0.3,), (0.3,)), extra={"model": "resnet20", "options": {"width": 0.25}})
  proc = run_python(["-m", "compactkd_jax.export_torch", "--teacher", str(tmp_path / "student"),
                     "--out", str(tmp_path / "s.pth")])
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "only zoo teachers" in proc.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "s.pth").exists()
