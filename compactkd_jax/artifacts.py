"""A trained network on disk: orbax checkpoint of its variables plus `model.json`, the spec that
rebuilds it (architecture, input shape, classes, normalization). Teachers and students alike."""
import os

import jax
import orbax.checkpoint as ocp

from compactkd_jax import feed, files
from compactkd_jax.errors import UserError
from compactkd_jax.models.net import BlockNet

SPEC_FILE = "model.json"
VARIABLES_DIR = "variables"


def save_model(directory: str, net: BlockNet, variables: dict, image_shape, num_classes: int,
               preprocess: feed.Preprocess, extra: dict | None = None) -> dict:
  """Saves the variables (orbax) and the spec that rebuilds the network; returns the spec."""
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  target = os.path.join(directory, VARIABLES_DIR)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(target, jax.device_get(variables), force=True)
    ckptr.wait_until_finished()  # async: the spec is written only once the variables are durable
  spec = {"architecture": net.to_json(), "image_shape": list(image_shape),
          "num_classes": num_classes, "preprocess": {"mean": preprocess.mean, "std": preprocess.std},
          **(extra or {})}
  files.write_json(os.path.join(directory, SPEC_FILE), spec)
  return spec


def load_model(directory: str) -> tuple[BlockNet, dict, dict]:
  """(net, variables, spec) from a directory written by save_model."""
  directory = os.path.abspath(directory)
  spec_path = os.path.join(directory, SPEC_FILE)
  if not os.path.exists(spec_path):
    raise UserError(f"no saved model in {directory} ({SPEC_FILE} missing); point the config at a "
                    "directory written by a finished teacher phase or export")
  spec = files.read_json(spec_path, fix="re-export the model")
  try:
    net = BlockNet.from_json(spec["architecture"])
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"{spec_path} is corrupt ({e}); re-export the model") from None
  abstract = jax.eval_shape(net.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, *spec["image_shape"]), "float32"))
  abstract = {"params": abstract["params"], "batch_stats": abstract.get("batch_stats", {})}
  try:
    with ocp.StandardCheckpointer() as ckptr:
      variables = ckptr.restore(os.path.join(directory, VARIABLES_DIR), abstract)
  except Exception as e:  # orbax raises many types for missing, truncated or mismatched files
    raise UserError(f"cannot restore the checkpoint in {directory}: {str(e).splitlines()[0][:200]};"
                    " re-run the phase that wrote it") from None
  return net, variables, spec


def preprocess_of(spec: dict, crop_padding: int = 0, flip: bool = False) -> feed.Preprocess:
  return feed.Preprocess(tuple(spec["preprocess"]["mean"]), tuple(spec["preprocess"]["std"]),
                         crop_padding, flip)
