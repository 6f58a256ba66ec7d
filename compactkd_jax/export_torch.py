"""A trained teacher out to PyTorch, the inverse of `compactkd_jax.convert`.

  python -m compactkd_jax.export_torch --teacher <workdir or teacher dir> --out teacher.pth

Writes `teacher.pth`, the state dict of the zoo module of scripts/torch_baseline/models.py (keys as
the popular CIFAR zoos name them: `conv1`, `layer1.0.bn2`, `fc`; `features.N`; torchvision's
MobileNetV2), and `teacher.json`, what builds that module (`zoo_model(model, **torch_options)`)
and feeds it (image shape, normalization). Importing the .pth with `compactkd_jax.convert` gives
back the same variables. Both files appear whole or not at all (written to a temporary name, then
renamed). PyTorch is imported only to save the file: it is in the `test` extra, not the core.
"""
import argparse
import os
from typing import Any, Mapping

import numpy as np

from compactkd_jax import artifacts, convert, errors, files
from compactkd_jax.errors import UserError
from compactkd_jax.models import zoo
from compactkd_jax.models.net import BlockNet

TEACHER_DIR = "teacher"  # a workdir's teacher folder (workdir.TEACHER; not imported: no TF)


def find_teacher(path: str) -> str:
  """The teacher folder of a workdir, or `path` itself when it is one."""
  for candidate in (os.path.join(path, TEACHER_DIR), path):
    if os.path.exists(os.path.join(candidate, artifacts.SPEC_FILE)):
      return candidate
  raise UserError(f"no finished teacher in {path} (neither {path}/{TEACHER_DIR}/"
                  f"{artifacts.SPEC_FILE} nor {path}/{artifacts.SPEC_FILE}); run the teacher phase "
                  "first, or point --teacher at a teacher folder")


def variables_to_torch_state_dict(variables: Mapping[str, Any], net: BlockNet,
                                  family: str | None = None) -> dict[str, np.ndarray]:
  """The inverse of `convert.torch_state_dict_to_variables`: a zoo teacher's Flax variables as the
  state dict of its PyTorch zoo module (scripts/torch_baseline/models.py), NumPy arrays keyed the
  way the zoos name them. Zoo convs that carry a bias (VGG's) get a zero bias, so the BN's running
  mean stays as it is: importing the result gives back exactly `variables`. BNs get
  num_batches_tracked = 0."""
  convert.check_zoo(net)
  family = family or convert.family_of(net)
  if family not in convert.FAMILIES:
    raise UserError(f"unknown family {family!r}; exportable families: {list(convert.FAMILIES)}")
  flat = {path: np.asarray(leaf, np.float32) for c in ("params", "batch_stats")
          for path, leaf in convert.flatten({c: variables.get(c, {})})}
  out: dict[str, np.ndarray] = {}
  for link in convert.FAMILIES[family].links(net):
    for collection, leaf, suffix in convert.LEAVES[link.kind]:
      value = flat.pop((collection, *link.flax, leaf), None)
      if value is None:
        continue  # e.g. the option-B shortcut of a net built with option A
      if link.kind == "conv":
        value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW; depthwise (k,k,1,C) -> (C,1,k,k)
      elif link.kind == "dense" and leaf == "kernel":
        value = value.T
      out[f"{link.torch}.{suffix}"] = np.ascontiguousarray(value)
    if link.kind == "bn" and f"{link.torch}.weight" in out:
      out[f"{link.torch}.num_batches_tracked"] = np.zeros((), np.int64)
      if link.fold_bias:
        out[link.fold_bias] = np.zeros_like(out[f"{link.torch}.running_mean"])
  if flat:
    unused = convert.listed(sorted("/".join(p) for p in flat))
    raise UserError(f"no PyTorch key receives the variables {unused} of this {family} network; "
                    "only zoo teachers can be exported")
  return out


def torch_options(spec: dict) -> dict:
  """Keyword arguments of scripts/torch_baseline/models.zoo_model for a saved teacher's spec."""
  model = spec.get("model")
  if model not in zoo.MODELS:
    raise UserError(f"the saved network is {model or 'not a zoo teacher'!r}; exportable families "
                    f"are the zoo teachers: {', '.join(zoo.MODELS)}")
  options = dict(zoo.model_options(model, spec.get("options", {})))
  options["in_channels"] = int(spec["image_shape"][-1])
  if model.startswith("vgg"):
    options["ceil_mode"] = True  # Flax's 'SAME' 2x2 pool (equal to floor on even sizes)
  return options


def export_teacher(teacher: str, out: str) -> dict:
  """Writes `out` (.pth state dict) and its `.json` description; returns the description."""
  source = find_teacher(teacher)
  net, variables, spec = artifacts.load_model(source)
  options = torch_options(spec)
  state = variables_to_torch_state_dict(variables, net, convert.family_of(net))
  description = {"model": spec["model"], "torch_options": options,
                 "num_classes": spec["num_classes"], "image_shape": spec["image_shape"],
                 "preprocess": spec["preprocess"], "source": source}
  if os.path.isdir(out):
    raise UserError(f"--out {out} is a directory; give a file name such as {out}/teacher.pth")
  import torch  # only here: the core install has no PyTorch
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  torch.save({k: torch.from_numpy(v) for k, v in state.items()}, out + ".tmp")
  os.replace(out + ".tmp", out)
  files.write_json(description_path(out), description)
  return description


def description_path(pth: str) -> str:
  return os.path.splitext(pth)[0] + ".json"


def load_description(pth: str) -> dict:
  description = files.read_json(description_path(pth), fix="export the teacher again")
  if description is None:
    raise UserError(f"no {description_path(pth)} beside {pth}: export the teacher again")
  return description


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description="Export a trained zoo teacher as a PyTorch state dict.")
  p.add_argument("--teacher", required=True, help="a workdir whose teacher phase finished, or a "
                 "teacher folder (model.json + variables)")
  p.add_argument("--out", required=True, help="the .pth file to write (a .json goes beside it)")
  args = p.parse_args(argv)
  description = errors.run_cli(export_teacher, args.teacher, args.out, needs="to write a .pth file")
  print(f"{description['model']} written to {args.out} (build: {description_path(args.out)})")


if __name__ == "__main__":
  main()
