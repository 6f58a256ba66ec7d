"""The ResNet-56 teacher of the trade-off and peer experiments: width 0.25 (4/8/16 channels) trained
to a plateau on the full Fashion-MNIST (55,000 train / 5,000 validation), like the quickstart's
ResNet-20 teacher (configs/quickstart_teacher.py), with more epochs for the deeper network.

  python -m compactkd_jax.main --config configs/resnet56_teacher.py --workdir runs/r56_teacher

30 epochs of SGD (lr 0.1, cosine, batch 128), validation accuracy every epoch (TensorBoard and the
log); 103 min for the 30 epochs on the 2-core CPU (teachers/fashion_mnist_resnet56_w0.25/README.md,
partly on one core). Interrupted, the same command resumes.
"""
from compactkd_jax.config import teacher_to_plateau


def get_config():
  return teacher_to_plateau("resnet56", width=0.25, epochs=30)
