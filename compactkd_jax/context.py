"""What every phase of a run shares: config, workdir, data on the devices, mesh, preprocessing."""
import dataclasses
import json
import os
from typing import Any

import ml_collections
from jax.sharding import Mesh

from compactkd_jax import feed, files
from compactkd_jax.data import Dataset


@dataclasses.dataclass
class RunContext:
  cfg: ml_collections.ConfigDict
  workdir: str
  dataset: Dataset
  mesh: Mesh
  preprocess: feed.Preprocess
  splits: dict[str, feed.DeviceSplit]  # "train", "validation", "test"
  writer: Any = None

  def path(self, *parts: str) -> str:
    return os.path.join(self.workdir, *parts)

  def read_json(self, *parts: str) -> dict | None:
    path = self.path(*parts)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  def write_json(self, obj: Any, *parts: str) -> None:
    files.write_json(self.path(*parts), obj)
