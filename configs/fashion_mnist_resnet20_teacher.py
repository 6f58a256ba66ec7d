"""ResNet-20 teacher on the full Fashion-MNIST (55,000 train / 5,000 validation / 10,000 test).

  python -m compactkd_jax.main --config configs/fashion_mnist_resnet20_teacher.py --workdir W

Measured on the 2-core CPU this project develops on (2026-11-25): 4 epochs, 1,716 steps of batch
128, test accuracy 91.48% (validation 91.64%), 35 minutes wall while other jobs shared the cores
(20 minutes of CPU time; expect ~20 minutes on an idle machine). Minutes on any GPU.
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
