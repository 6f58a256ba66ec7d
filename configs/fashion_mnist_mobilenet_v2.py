"""MobileNetV2-CIFAR teacher on the full Fashion-MNIST; the paper's headline point: 1/5.2 of the
teacher's parameters.

  python -m compactkd_jax.main --config configs/fashion_mnist_mobilenet_v2.py --workdir runs/fashion_mnist_mobilenet_v2

Expected runtime (an estimate; this config has not been run yet): many hours on a 2-core CPU (the
width-0.35 reproduction trains at ~125 images/s there; this is width 1.0); about an hour on one GPU.
Expected result: not yet measured here. The budget is reachable because `slim` factorizes the last
1 x 1 conv (tests/test_distill.py); without that the smallest plan keeps 22.7% of the parameters.
"""
from compactkd_jax.config import PHASES, default_config


def get_config():
  c = default_config()
  c.phases = PHASES
  c.teacher.model = "mobilenet_v2"
  c.teacher.train.epochs = 10
  c.teacher.train.learning_rate = 0.05
  c.distill.train.epochs = 2
  c.finetune.train.epochs = 6
  c.baselines.train.epochs = 6
  c.select.metric = "params"
  c.select.budget = 1 / 5.2
  return c
