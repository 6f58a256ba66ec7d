"""The phases of a run. `config_keys.PHASES` is the one list of them, in the order they run; the
phase named N is the module `phases/N.py` with `run(ctx) -> dict`. Phases never import each other:
what one needs of another it reads from the workdir (workdir.py)."""
import importlib

from compactkd_jax.config_keys import PHASES

REGISTRY = {name: importlib.import_module(f"{__name__}.{name}").run for name in PHASES}
