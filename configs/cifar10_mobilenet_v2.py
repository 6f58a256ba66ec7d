"""MobileNetV2-CIFAR on CIFAR-10 through tensorflow-datasets, parameter budget 1/5.2 (the paper's
headline: 2x fewer FLOPs, 5.2x fewer parameters).

  python -m compactkd_jax.main --config configs/cifar10_mobilenet_v2.py --workdir runs/cifar10_mobilenet_v2

Expected runtime (an estimate; this config has not been run yet): about two hours on one GPU. Expected result: teacher ~94%; not yet measured here.
"""
from compactkd_jax.config import PHASES, default_config, use_tfds_cifar


def get_config():
  c = default_config()
  c.phases = PHASES
  use_tfds_cifar(c, "cifar10")
  c.teacher.model = "mobilenet_v2"
  c.teacher.train.epochs = 160
  c.teacher.train.learning_rate = 0.05
  c.distill.train.epochs = 10
  c.finetune.train.epochs = 40
  c.baselines.train.epochs = 40
  c.select.metric = "params"
  c.select.budget = 1 / 5.2
  return c
