"""XLA compiler options by how often a program runs."""
import functools

import jax


def run_once() -> dict | None:
  """For a program that runs once or a few times (candidate init, scoring, the NaN check at each
  checkpoint): on XLA:CPU the backend optimizations cost more compile time than they save (init
  14.5 s -> 3.8 s to compile and run; scoring a few percent faster, nMSE equal within 1e-7).
  Other backends keep their defaults."""
  return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None


def jit_run_once(fun=None, **jit_kwargs):
  """jax.jit with run_once()'s options, read at the first call: asking for the backend at import
  would start it before jax.distributed.initialize in a multi-process run."""
  if fun is None:
    return functools.partial(jit_run_once, **jit_kwargs)
  jitted = None

  @functools.wraps(fun)
  def call(*args, **kwargs):
    nonlocal jitted
    if jitted is None:
      jitted = jax.jit(fun, compiler_options=run_once(), **jit_kwargs)
    return jitted(*args, **kwargs)

  return call
