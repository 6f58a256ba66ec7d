"""The PyTorch mirrors of compactkd_jax's blocks (scripts/torch_baseline/models.py) compute what
the Flax blocks compute: students made of every kind of candidate, with random Flax variables
copied across by name, give the same logits on real Fashion-MNIST images (28x28: odd maps under
the stride-2 convs and pools)."""
import jax
import numpy as np
import pytest

from torch_reference import models as tm, real_images, to_nchw, torch
from test_models import _random_variables
from compactkd_jax import cost
from compactkd_jax.models import candidates, get_model

SHAPE = (28, 28, 1)
NAMES = ["dwsep", "slim_0.5", "ir_2", "skip", "slim_0.25", "ir_1", "keep", "ir_6", "slim_0.75"]


def _student(name, **options):
  """The teacher with block i replaced by the first candidate, from the i-th name of the menu
  on, that applies to it: every candidate kind, deterministically."""
  net = get_model(name, 10, **options)
  shapes = cost.feature_shapes(net, SHAPE)
  order = [net.stem.name, *net.block_names]
  swaps = {}
  for i, spec in enumerate(net.blocks):
    for cand in NAMES[i % len(NAMES):] + NAMES[:i % len(NAMES)]:
      new = candidates.CANDIDATES[cand](spec, shapes[order[i]], shapes[spec.name])
      if new is not None:
        swaps[spec.name] = new
        break
  return net.with_blocks(swaps)


@pytest.mark.parametrize("name,options", [("resnet20", {"shortcut": "A", "width": 0.5}),
                                          ("resnet20", {"shortcut": "B", "width": 0.5}),
                                          ("vgg11", {"classifier": "zoo", "width": 0.25}),
                                          ("mobilenet_v2", {"width": 0.5, "dropout": 0.2})],
                         ids=["resnet20-A", "resnet20-B", "vgg11-zoo", "mobilenet_v2"])
def test_mirror_matches_flax_student(fmnist_dir, name, options):
  net = _student(name, **options)
  variables = jax.tree.map(np.asarray, _random_variables(net, SHAPE))
  x = real_images(fmnist_dir, SHAPE)
  expected = np.asarray(jax.jit(lambda v, x: net.apply(v, x)[0])(variables, x))
  mirror = tm.BlockNet(net.to_json(), SHAPE[-1])
  tm.load_flax_variables(mirror, variables)
  with torch.no_grad():
    got = mirror.eval()(to_nchw(x)).numpy()
  assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
  assert np.ptp(expected, axis=0).min() > 1e-3  # logits depend on the image: the check can fail
