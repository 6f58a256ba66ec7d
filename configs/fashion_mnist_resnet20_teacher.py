"""ResNet-20 teacher on the full Fashion-MNIST (55,000 train / 5,000 validation / 10,000 test).

  python -m compactkd_jax.main --config configs/fashion_mnist_resnet20_teacher.py --workdir W

Runtime on a 2-core CPU: see the README (measured). Expected test accuracy: > 91%.
"""
from compactkd_jax.config import default_config


def get_config():
  c = default_config()
  c.phases = ("teacher",)
  c.teacher.model = "resnet20"
  c.teacher.train.epochs = 4
  c.teacher.train.batch_size = 128
  c.teacher.train.learning_rate = 0.1
  return c
