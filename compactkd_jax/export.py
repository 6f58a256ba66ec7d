"""The exported student: orbax checkpoint + `model.json` (the spec that rebuilds it) + a
serialized `jax.export` artifact of `predict(uint8 images) -> logits` with a symbolic batch size.
`load_student(path)` brings back a `Student` that predicts like the trained one."""
import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from compactkd_jax import artifacts, files
from compactkd_jax.errors import UserError
from compactkd_jax.models.net import BlockNet

EXPORT_NAME = "student.jax_export"


@dataclasses.dataclass
class Student:
  net: BlockNet
  variables: dict
  spec: dict

  @property
  def preprocess(self):
    return artifacts.preprocess_of(self.spec)

  def predict(self, images_uint8) -> jax.Array:
    """Logits for a batch of raw uint8 NHWC images (normalization included). Anything else (float
    images, which would be misread as 0-255 values; another resolution or channel count; a missing
    batch axis) is a UserError saying what the model expects."""
    images = np.asarray(images_uint8)
    shape = tuple(self.spec["image_shape"])
    expected = f"uint8 images of shape (N, {', '.join(map(str, shape))}), values 0-255"
    if images.dtype != np.uint8:
      hint = (" (images in [0, 1]: pass (x * 255).round().astype(np.uint8))"
              if np.issubdtype(images.dtype, np.floating) else "")
      raise UserError(f"predict takes {expected}; got dtype {images.dtype}{hint}")
    if images.ndim == len(shape) and images.shape == shape:
      raise UserError(f"predict takes {expected}; got one image of shape {images.shape}: add the "
                      "batch axis (images[None])")
    if images.ndim != len(shape) + 1 or images.shape[1:] != shape or not images.shape[0]:
      raise UserError(f"predict takes {expected}; got shape {images.shape}")
    return _predict(self.variables, jnp.asarray(images), net=self.net, preprocess=self.preprocess)


@functools.partial(jax.jit, static_argnames=("net", "preprocess"))
def _predict(variables, images, *, net, preprocess):
  return net.apply(variables, preprocess(images))[0]


def export(directory: str, net: BlockNet, variables: dict, image_shape, num_classes: int,
           preprocess, extra: dict | None = None) -> dict:
  """Writes the three artifacts into `directory`; returns their paths."""
  artifacts.save_model(directory, net, variables, image_shape, num_classes, preprocess, extra)
  host_vars = jax.device_get(variables)
  predict = jax.jit(lambda x: net.apply(host_vars, preprocess(x))[0])
  batch = jax.export.symbolic_shape("b")[0]
  exported = jax.export.export(predict)(
      jax.ShapeDtypeStruct((batch, *image_shape), jnp.uint8))
  files.write_bytes(os.path.join(directory, EXPORT_NAME), bytes(exported.serialize()))
  return {"checkpoint": os.path.join(directory, artifacts.VARIABLES_DIR),
          "spec": os.path.join(directory, artifacts.SPEC_FILE),
          "jax_export": os.path.join(directory, EXPORT_NAME)}


def load_student(directory: str) -> Student:
  net, variables, spec = artifacts.load_model(directory)
  return Student(net, variables, spec)


def load_exported(directory: str):
  """The deserialized `jax.export.Exported`; call `.call(images_uint8)`."""
  with open(os.path.join(directory, EXPORT_NAME), "rb") as f:
    return jax.export.deserialize(bytearray(f.read()))
