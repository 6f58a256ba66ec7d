"""ResNet-56 on CIFAR-10 through tensorflow-datasets (prepare it first: `tfds build cifar10`).

  python -m compactkd_jax.main --config configs/cifar10_resnet56.py --workdir runs/cifar10_resnet56

Expected runtime (an estimate; this config has not been run yet): about an hour on one GPU; impractical on a 2-core CPU.
Expected result: teacher ~93% (the usual CIFAR-10 ResNet-56); not yet measured here.
"""
from compactkd_jax.config import PHASES, default_config, use_tfds_cifar


def get_config():
  c = default_config()
  c.phases = PHASES
  use_tfds_cifar(c, "cifar10")
  c.teacher.model = "resnet56"
  c.teacher.train.epochs = 160
  c.teacher.train.batch_size = 128
  c.distill.train.epochs = 10
  c.finetune.train.epochs = 40
  c.baselines.train.epochs = 40
  return c
