"""Cross-check of compactkd_jax.cost's MACs against independent counters on the PyTorch reference
models (scripts/torch_baseline/models.py): forward hooks counting conv and linear MACs, and the
established counter ptflops (pinned, aten backend). Measured: ResNet-56, MobileNetV2, ResNet-20-B
within 10 MACs (ptflops adds the classifier's bias adds); VGG within 0.1% (conv bias adds)."""
import pytest

from torch_reference import models as tm
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


@pytest.mark.parametrize("name,options", [("resnet56", {}), ("vgg16", {}), ("mobilenet_v2", {}),
                                          ("resnet20", {"shortcut": "B"}),
                                          ("vgg11", {"classifier": "zoo"})],
                         ids=["resnet56", "vgg16", "mobilenet_v2", "resnet20-B", "vgg11-zoo"])
def test_macs_match_ptflops(name, options):
  """ptflops' aten backend counts exactly the convolutions and matmuls that run (plus dense bias
  adds, a few dozen), an established counter independent of both our jaxpr walk and the hooks."""
  ptflops = pytest.importorskip("ptflops")
  model = tm.zoo_model(name, 10, **options).eval()
  macs, _ = ptflops.get_model_complexity_info(
      model, (CIFAR_SHAPE[2], *CIFAR_SHAPE[:2]), as_strings=False, print_per_layer_stat=False,
      backend="aten")
  got = cost.network_costs(get_model(name, 10, **options), CIFAR_SHAPE)["total"]["macs"]
  assert got == pytest.approx(macs, rel=0.01)
