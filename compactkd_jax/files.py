"""Writing run files: atomically (temp file + rename, so a killed run never leaves half a file
behind) and from the primary process only (every process of a multi-process run computes the same
results and sees the same workdir, so one writer is enough and avoids races on the temp files)."""
import json
import os
from typing import Any

import jax


def is_primary() -> bool:
  return jax.process_index() == 0


def write_bytes(path: str, data: bytes) -> None:
  if not is_primary():
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    f.write(data)
  os.replace(path + ".tmp", path)


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode())


def write_json(path: str, obj: Any) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def barrier(name: str) -> None:
  """Every process waits here until all arrive: files the primary wrote before are now visible."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
