"""Full-width ResNet-56 on the full Fashion-MNIST, sized for one GPU inside scripts/gpu/run.sh's
few minutes: a teacher trained to its plateau (30 epochs, validation checked every epoch), the
slim + inner menu (the one chosen on validation for ResNet-56 on the CPU,
results/inner_ablation_resnet56_8ep.md; its parallel step compiles in 36 s on the 2-core CPU at
this width, the full menu's with depthwise candidates in 99 s), budgets 50% and 25% of the MACs,
and ours against scratch and Hinton KD at equal total cost.

  python -m compactkd_jax.main --config configs/gpu_fashion_mnist_resnet56.py --workdir runs/gpu_r56

Measured on one H200 (results/h200_first_run.md): the teacher phase 126 s (validation 94.28%);
the distillation over the full menu (this config's menu then) had not logged its 50th step after
290 s more. The rest has not run on a GPU yet. On the 2-core CPU, hours.
"""
from compactkd_jax.config import PHASES, default_config


def get_config():
  c = default_config()
  c.phases = PHASES
  c.teacher.model = "resnet56"
  c.teacher.train.epochs = 30
  c.teacher.train.batch_size = 256
  c.teacher.train.learning_rate = 0.2
  c.teacher.train.eval_every_steps = 215  # about an epoch: the curve shows the plateau
  c.distill.candidates = ("keep", "slim_0.25", "slim_0.5", "slim_0.75", "inner_0.25", "inner_0.5",
                          "inner_0.75", "skip")
  c.distill.train.epochs = 2
  c.distill.train.batch_size = 256
  c.refine.train.epochs = 0.2
  c.finetune.train.epochs = 10
  c.finetune.train.batch_size = 256
  c.finetune.train.learning_rate = 0.04
  c.baselines.train.batch_size = 256
  c.baselines.train.learning_rate = 0.2
  c.baselines.kd.alpha = 0.5  # as chosen on validation for the quickstart (ablation_quickstart.md)
  c.select.metric = "macs"
  c.select.budgets = (0.5, 0.25)
  return c
