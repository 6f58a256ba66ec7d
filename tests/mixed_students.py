"""Students made of every kind of candidate, deterministically: shared by the tests that compare a
student with another implementation of it (the PyTorch mirror, the deployed runtimes)."""
from compactkd_jax import cost
from compactkd_jax.models import candidates, get_model

NAMES = ["dwsep", "slim_0.5", "inner_0.5", "ir_2", "skip", "slim_0.25", "ir_1", "keep", "ir_6",
         "slim_0.75", "inner_0.25"]


def mixed_student(name, shape, **options):
  """The teacher with block i replaced by the first candidate, from the i-th name of the menu
  on, that applies to it."""
  net = get_model(name, 10, **options)
  shapes = cost.feature_shapes(net, shape)
  order = [net.stem.name, *net.block_names]
  swaps = {}
  for i, spec in enumerate(net.blocks):
    for cand in NAMES[i % len(NAMES):] + NAMES[:i % len(NAMES)]:
      new = candidates.CANDIDATES[cand](spec, shapes[order[i]], shapes[spec.name])
      if new is not None:
        swaps[spec.name] = new
        break
  return net.with_blocks(swaps)
