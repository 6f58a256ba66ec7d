"""The quickstart's teacher: ResNet-20 at width 0.5 (8/16/32 channels, 67,906 parameters) trained
to a plateau on the full Fashion-MNIST (55,000 train / 5,000 validation), the way a user brings a
converged teacher. Its result is committed in teachers/fashion_mnist_resnet20_w0.5/, which
configs/quickstart.py loads.

  python -m compactkd_jax.main --config configs/quickstart_teacher.py --workdir runs/qs_teacher

25 epochs of SGD (lr 0.1, cosine, batch 128), the validation accuracy evaluated every epoch (the
curve is in the workdir's tensorboard/ and in teachers/fashion_mnist_resnet20_w0.5/README.md).
"""
from compactkd_jax.config import teacher_to_plateau


def get_config():
  return teacher_to_plateau("resnet20", width=0.5, epochs=25)
