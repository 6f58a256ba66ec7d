"""VGG-16-BN (3-layer zoo classifier) on CIFAR-100 through tensorflow-datasets (`tfds build cifar100`).

  python -m compactkd_jax.main --config configs/cifar100_vgg16.py --workdir runs/cifar100_vgg16

Expected runtime (an estimate; this config has not been run yet): about an hour on one GPU. Expected result: teacher ~72%; not yet measured here.
"""
from compactkd_jax.config import PHASES, default_config, use_tfds_cifar


def get_config():
  c = default_config()
  c.phases = PHASES
  use_tfds_cifar(c, "cifar100")
  c.teacher.model = "vgg16"
  c.teacher.options.classifier = "zoo"
  c.teacher.train.epochs = 160
  c.teacher.train.learning_rate = 0.05
  c.distill.train.epochs = 10
  c.finetune.train.epochs = 40
  c.baselines.train.epochs = 40
  return c
