"""Command-line entry: `python -m compactkd_jax.main --config configs/<name>.py --workdir <dir>`.

Problems the user can fix print one line and exit 1; the workdir keeps everything already computed.
"""
import logging as py_logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow is only a tfds/TensorBoard backend

from absl import app, flags
from ml_collections import config_flags

from compactkd_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file (configs/*.py)")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, results and reports")
flags.mark_flags_as_required(["config", "workdir"])
# Multi-process runs (a Cloud TPU pod slice, several GPU hosts, or processes on one machine): every
# process runs the same command; --distributed alone lets JAX find its peers (TPU, SLURM, Open MPI),
# or name them explicitly with the three flags below.
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "join a multi-process run "
                                 "(jax.distributed.initialize)")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0, e.g. 10.0.0.1:1234 (implies --distributed)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "number of processes")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index, 0..num_processes-1")


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO chatter of orbax and friends so the progress lines stay readable."""
  NOISY = ("orbax", "etils", "tensorflow_datasets")

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(n in record.pathname for n in self.NOISY)


def main(argv):
  py_logging.getLogger("absl").addFilter(_QuietLibraries())
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from compactkd_jax import pipeline  # after flag parsing: a bad flag fails fast, before JAX loads
  if _DISTRIBUTED.value or _COORDINATOR.value:
    _initialize_distributed()
  try:
    config = _CONFIG.value
    config.keys()  # config_flags reports a file it could not load only on first use
  except (OSError, ImportError, SyntaxError) as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    _fail(f"cannot load the config file: {lines[-1] if lines else e}")
  try:
    pipeline.run(config, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def _initialize_distributed():
  import jax
  # Only the CPU backend reads this: CPU processes exchange collectives through gloo (TPUs and GPUs
  # use their own links).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  except (ValueError, RuntimeError) as e:
    _fail(f"cannot join the multi-process run: {str(e).splitlines()[0]}; give "
          "--coordinator_address, --num_processes and --process_id, or run where JAX detects them")


def parse_flags(argv):
  """absl's parser, but a bad flag or config override is one line, not a traceback."""
  _check_config_file(argv)
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections: an override names an unknown key
    key = str(e).strip("\"'")
    culprit = next((a for a in argv[1:] if f".{key}" in a.split("=")[0]), key)
    _fail(f"unknown config key in {culprit}; the valid keys and their defaults are in "
          "compactkd_jax/config.py")
  except (flags.Error, TypeError, ValueError) as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    _fail(f"{lines[-1] if lines else e}; the valid config keys and their defaults are in "
          "compactkd_jax/config.py")


def _check_config_file(argv) -> None:
  """Runs the --config file's get_config() once before absl does, so a file that is missing,
  broken or lacks get_config() is one line naming it (absl would print a traceback, or report a
  missing get_config as an unknown config key)."""
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if path is None and "--config" in argv[:-1]:
    path = argv[argv.index("--config") + 1]
  if not path:
    return  # absl says the flag is required
  if not os.path.exists(path) and ":" in path:
    path = path.rsplit(":", 1)[0]  # config_flags' "file.py:argument" form
  import importlib.util
  try:
    spec = importlib.util.spec_from_file_location("_compactkd_config_check", path)
    if spec is None:
      _fail(f"--config {path} is not a Python file (configs/<name>.py)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  except FileNotFoundError:
    _fail(f"no config file {path}; the configs are in configs/")
  except SyntaxError as e:
    _fail(f"config file {path}, line {e.lineno}: {e.msg}")
  except Exception as e:  # anything the file itself raises
    _fail(f"config file {path} raised {type(e).__name__}: {e}")
  if not callable(getattr(module, "get_config", None)):
    _fail(f"config file {path} has no get_config() function returning an "
          "ml_collections.ConfigDict")
  import ml_collections
  try:
    made = module.get_config()
  except Exception as e:
    _fail(f"get_config() of {path} raised {type(e).__name__}: {e}")
  if not isinstance(made, ml_collections.ConfigDict):
    _fail(f"get_config() of {path} returned {type(made).__name__}, not an "
          "ml_collections.ConfigDict")


def _fail(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
