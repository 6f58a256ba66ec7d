"""The quickstart's teacher: ResNet-20 at width 0.5 (8/16/32 channels, 67,906 parameters) trained
to a plateau on the full Fashion-MNIST (55,000 train / 5,000 validation), the way a user brings a
converged teacher. Its result is committed in teachers/fashion_mnist_resnet20_w0.5/, which
configs/quickstart.py loads.

  python -m compactkd_jax.main --config configs/quickstart_teacher.py --workdir runs/qs_teacher

25 epochs of SGD (lr 0.1, cosine, batch 128), the validation accuracy evaluated every epoch (the
curve is in the workdir's tensorboard/ and in teachers/fashion_mnist_resnet20_w0.5/README.md).
"""
from compactkd_jax.config import default_config

EPOCHS = 25
STEPS_PER_EPOCH = 55000 // 128


def get_config():
  c = default_config()
  c.phases = ("teacher",)
  c.teacher.model = "resnet20"
  c.teacher.options.width = 0.5
  c.teacher.train.epochs = EPOCHS
  c.teacher.train.learning_rate = 0.1
  c.teacher.train.log_every_steps = 200
  c.teacher.train.eval_every_steps = STEPS_PER_EPOCH
  c.teacher.train.checkpoint_every_steps = STEPS_PER_EPOCH
  return c
