"""Run files. Writes: atomically (temp file + rename, so a killed run never leaves half a file
behind) and from the primary process only (every process of a multi-process run computes the same
results and sees the same workdir, so one writer is enough and avoids races on the temp files).
Reads of JSON go through `read_json`, which turns a corrupt or unreadable file into one line naming
the file and the fix. OS errors of either (full disk, read-only mount, a file where a folder should
be) become one line too."""
import json
import os
from typing import Any

import jax

from compactkd_jax.errors import UserError


def is_primary() -> bool:
  return jax.process_index() == 0


def write_bytes(path: str, data: bytes) -> None:
  if not is_primary():
    return
  try:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "wb") as f:
      f.write(data)
    os.replace(path + ".tmp", path)
  except OSError as e:
    raise UserError(f"cannot write {path}: {e.strerror or e}; free space or choose a writable "
                    "--workdir (what is already there stays)") from None


def read_json(path: str, fix: str = "delete it to recompute it") -> Any:
  """The JSON in `path`, None when there is no such file; corruption is a one-line UserError."""
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:120]
    raise UserError(f"{path} is unreadable or corrupt ({reason}); {fix}") from None


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode())


def write_json(path: str, obj: Any) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def barrier(name: str) -> None:
  """Every process waits here until all arrive: files the primary wrote before are now visible."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
