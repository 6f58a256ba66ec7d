"""The ResNet-56 teacher of the trade-off and peer experiments: width 0.25 (4/8/16 channels) trained
to a plateau on the full Fashion-MNIST (55,000 train / 5,000 validation), like the quickstart's
ResNet-20 teacher (configs/quickstart_teacher.py), with more epochs for the deeper network.

  python -m compactkd_jax.main --config configs/resnet56_teacher.py --workdir runs/r56_teacher

30 epochs of SGD (lr 0.1, cosine, batch 128), validation accuracy every epoch (TensorBoard and the
log); about 2 min an epoch alone on the 2-core CPU. Interrupted, the same command resumes.
"""
from compactkd_jax.config import default_config

EPOCHS = 30
STEPS_PER_EPOCH = 55000 // 128


def get_config():
  c = default_config()
  c.phases = ("teacher",)
  c.teacher.model = "resnet56"
  c.teacher.options.width = 0.25
  c.teacher.train.epochs = EPOCHS
  c.teacher.train.learning_rate = 0.1
  c.teacher.train.log_every_steps = 200
  c.teacher.train.eval_every_steps = STEPS_PER_EPOCH
  c.teacher.train.checkpoint_every_steps = STEPS_PER_EPOCH
  return c
