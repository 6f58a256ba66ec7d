"""The PyTorch mirrors of compactkd_jax's blocks (scripts/torch_baseline/models.py) compute what
the Flax blocks compute: students made of every kind of candidate, with random Flax variables
copied across by name, give the same logits on real Fashion-MNIST images (28x28: odd maps under
the stride-2 convs and pools)."""
import jax
import numpy as np
import pytest

from torch_reference import models as tm, real_images, to_nchw, torch
from mixed_students import mixed_student
from test_models import _random_variables

SHAPE = (28, 28, 1)


@pytest.mark.parametrize("name,options", [("resnet20", {"shortcut": "A", "width": 0.5}),
                                          ("resnet20", {"shortcut": "B", "width": 0.5}),
                                          ("vgg11", {"classifier": "zoo", "width": 0.25}),
                                          ("mobilenet_v2", {"width": 0.5, "dropout": 0.2})],
                         ids=["resnet20-A", "resnet20-B", "vgg11-zoo", "mobilenet_v2"])
def test_mirror_matches_flax_student(fmnist_dir, name, options):
  net = mixed_student(name, SHAPE, **options)
  variables = jax.tree.map(np.asarray, _random_variables(net, SHAPE))
  x = real_images(fmnist_dir, SHAPE)
  expected = np.asarray(jax.jit(lambda v, x: net.apply(v, x)[0])(variables, x))
  mirror = tm.BlockNet(net.to_json(), SHAPE[-1])
  tm.load_flax_variables(mirror, variables)
  with torch.no_grad():
    got = mirror.eval()(to_nchw(x)).numpy()
  assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
  assert np.ptp(expected, axis=0).min() > 1e-3  # logits depend on the image: the check can fail
