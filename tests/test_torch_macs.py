"""Cross-check of compactkd_jax.cost's MACs against an independent counter: forward hooks on the
PyTorch reference models (scripts/torch_baseline/models.py) count conv and linear MACs."""
import pytest

from torch_baseline import models as tm
from compactkd_jax import cost
from compactkd_jax.models import get_model

CIFAR_SHAPE = (32, 32, 3)


@pytest.mark.parametrize("name,options", [("resnet56", {}), ("vgg16", {}), ("mobilenet_v2", {}),
                                          ("resnet20", {"shortcut": "B"}),
                                          ("vgg11", {"classifier": "zoo"})],
                         ids=["resnet56", "vgg16", "mobilenet_v2", "resnet20-B", "vgg11-zoo"])
def test_macs_match_pytorch_hook_count(name, options):
  expected = tm.count_macs(tm.zoo_model(name, 10, **options), CIFAR_SHAPE)
  got = cost.network_costs(get_model(name, 10, **options), CIFAR_SHAPE)["total"]["macs"]
  assert got == pytest.approx(expected, rel=0.01)
