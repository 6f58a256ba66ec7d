"""What every phase of a run shares: config, workdir, data on the devices, mesh, preprocessing.

In a budget sweep the per-budget phases (select ... report) run with a context whose `workdir` is the
budget's own folder (`<workdir>/budget_<metric>_<value>/`) and whose `root` is the sweep's workdir,
where the phases every budget shares (teacher, distill) keep their files: those are read through
`shared_path`."""
import dataclasses
import os
from typing import Any

import ml_collections
from jax.sharding import Mesh

from compactkd_jax import feed, files
from compactkd_jax.data import Dataset


CHECKPOINTS = "checkpoints"  # <workdir>/checkpoints/<loop>/<step>/


@dataclasses.dataclass
class RunContext:
  cfg: ml_collections.ConfigDict
  workdir: str
  dataset: Dataset
  mesh: Mesh
  preprocess: feed.Preprocess
  splits: dict[str, feed.DeviceSplit]  # "train", "validation", "test"
  writer: Any = None
  root: str = ""  # the workdir of the shared phases; "" when it is `workdir` itself

  def shared_path(self, *parts: str) -> str:
    """A file of a phase that every budget shares (the teacher, the distilled candidates)."""
    return os.path.join(self.root or self.workdir, *parts)

  def read_shared_json(self, *parts: str) -> dict | None:
    return _read_json(self.shared_path(*parts))

  def for_budget(self, budget: float, folder: str) -> "RunContext":
    """The context of one budget of a sweep: its own config (select.budget set) and folder."""
    cfg = self.cfg.copy_and_resolve_references()
    cfg.select.budget = float(budget)
    writer = self.writer and _PrefixedWriter(self.writer, folder)
    return dataclasses.replace(self, cfg=cfg, workdir=os.path.join(self.workdir, folder),
                               root=self.workdir, writer=writer)

  def path(self, *parts: str) -> str:
    return os.path.join(self.workdir, *parts)

  def checkpoint_dir(self, loop: str) -> str:
    """Where the training loop named `loop` keeps its checkpoints (resume)."""
    return self.path(CHECKPOINTS, loop)

  def read_json(self, *parts: str) -> dict | None:
    return _read_json(self.path(*parts))

  def write_json(self, obj: Any, *parts: str) -> None:
    files.write_json(self.path(*parts), obj)


@dataclasses.dataclass
class _PrefixedWriter:
  """One budget's curves in the sweep's TensorBoard, under `<folder>/` so budgets do not overlap."""
  writer: Any
  prefix: str

  def write_scalars(self, step: int, scalars: dict) -> None:
    self.writer.write_scalars(step, {f"{self.prefix}/{k}": v for k, v in scalars.items()})


def _read_json(path: str) -> dict | None:
  return files.read_json(path, fix="delete it (and the phase's folder) to recompute the phase")
