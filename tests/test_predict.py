"""Tests for `Student.predict` on bad input: anything but a batch of uint8 images of the model's
resolution and channels is a UserError saying what the model expects; the right input still gives
the network's logits."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compactkd_jax import export, feed
from compactkd_jax.errors import UserError
from compactkd_jax.models import get_model


@pytest.fixture(scope="module")
def student():
  net = get_model("resnet20", 10, width=0.25)
  variables = jax.device_get(net.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
  pre = feed.Preprocess((0.3,), (0.35,))
  spec = {"image_shape": [28, 28, 1], "num_classes": 10,
          "preprocess": {"mean": list(pre.mean), "std": list(pre.std)}}
  return export.Student(net, variables, spec)


def test_uint8_batch_gives_the_networks_logits(student):
  x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  expected = student.net.apply(student.variables, (x / 255.0 - 0.3) / 0.35)[0]
  np.testing.assert_allclose(student.predict(x), expected, atol=1e-5)


@pytest.mark.parametrize("images, needle", [
    (np.zeros((2, 28, 28, 1), np.float32), "got dtype float32 (images in [0, 1]"),
    (np.zeros((2, 28, 28, 1), np.int64), "got dtype int64"),
    (np.zeros((28, 28, 1), np.uint8), "add the batch axis"),
    (np.zeros((2, 28, 28), np.uint8), "got shape (2, 28, 28)"),
    (np.zeros((2, 32, 32, 1), np.uint8), "got shape (2, 32, 32, 1)"),
    (np.zeros((2, 28, 28, 3), np.uint8), "got shape (2, 28, 28, 3)"),
    (np.zeros((0, 28, 28, 1), np.uint8), "got shape (0, 28, 28, 1)")],
    ids=["float01", "int64", "no_batch_axis", "no_channel_axis", "resolution", "channels",
         "empty"])
def test_bad_images_say_what_is_expected(student, images, needle):
  with pytest.raises(UserError) as e:
    student.predict(images)
  assert "uint8 images of shape (N, 28, 28, 1)" in str(e.value) and needle in str(e.value)
