"""VGG-16-BN (one dense layer) teacher on the full Fashion-MNIST, FLOPs budget 50%.

  python -m compactkd_jax.main --config configs/fashion_mnist_vgg16.py --workdir runs/fashion_mnist_vgg16

Expected runtime (an estimate; this config has not been run yet): several hours on a 2-core CPU; well under an hour on one GPU.
Expected result: teacher ~93-94%; not yet measured here.
"""
from compactkd_jax.config import PHASES, default_config


def get_config():
  c = default_config()
  c.phases = PHASES
  c.teacher.model = "vgg16"
  c.teacher.train.epochs = 10
  c.teacher.train.learning_rate = 0.05
  c.distill.train.epochs = 2
  c.finetune.train.epochs = 6
  c.baselines.train.epochs = 6
  return c
