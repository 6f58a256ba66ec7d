"""ResNet-56 (option A) teacher on the full Fashion-MNIST, FLOPs budget 50%.

  python -m compactkd_jax.main --config configs/fashion_mnist_resnet56.py --workdir runs/fashion_mnist_resnet56

Expected runtime (an estimate; this config has not been run yet): about 3 hours on a 2-core CPU (teacher 12 epochs dominates), minutes on a GPU.
Expected result: teacher ~93%, student within ~1 point at half the FLOPs (not yet measured here).
"""
from compactkd_jax.config import PHASES, default_config


def get_config():
  c = default_config()
  c.phases = PHASES
  c.teacher.model = "resnet56"
  c.teacher.train.epochs = 12
  c.distill.train.epochs = 2
  c.finetune.train.epochs = 6
  c.baselines.train.epochs = 6
  c.select.budget = 0.5
  return c
