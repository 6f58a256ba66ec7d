"""Full-width ResNet-56 on the full Fashion-MNIST, for one GPU (scripts/gpu/run.sh): the
committed full-width teacher (teachers/fashion_mnist_resnet56_w1/, trained on an H200 by this
config's teacher section: 30 epochs to its plateau, validation 94.02%, test 93.55%), loaded, then
the student side exactly as chosen on validation on the CPU for ResNet-56
(scripts/tradeoff_experiments.sh steps 7-8: the quickstart's recipe with distillation and
refinement 0.1 epoch, the slim + inner menu, an 8-epoch fine-tune, at its batch size and learning
rates: nothing is chosen anew here), budgets 50% and 25% of the MACs, ours against scratch and
Hinton KD at equal total cost.

  python -m compactkd_jax.main --config configs/gpu_fashion_mnist_resnet56.py --workdir runs/gpu_r56
  (--config.teacher.checkpoint="" trains the teacher instead: 139 s on an H200)

Measured on one H200 (results/h200_runs.md, second run), per phase wall time: teacher 139 s,
distillation 237 s (43 steps: mostly the parallel step's compile; scoring 52 s), then at 50% MACs
selection 3 s, refinement 78 s, the 3,432-step fine-tune at about 40 steps/s; the run stopped
there at its deadline. The baselines at equal total cost and the 25% budget have not run on a
GPU. On the 2-core CPU, hours.
"""
import os

from compactkd_jax.config import PHASES, default_config

# The committed teacher, found from this file so that the command works from any directory.
TEACHER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "teachers",
                       "fashion_mnist_resnet56_w1")


def get_config():
  c = default_config()
  c.phases = PHASES
  c.teacher.model = "resnet56"
  c.teacher.checkpoint = TEACHER
  # How it was trained (used only with --config.teacher.checkpoint=""):
  c.teacher.train.epochs = 30
  c.teacher.train.batch_size = 256
  c.teacher.train.learning_rate = 0.2
  c.teacher.train.eval_every_steps = 215  # about an epoch: the curve shows the plateau
  # The student side of configs/quickstart.py, with steps 7-8's lengths and menu.
  c.distill.candidates = ("keep", "slim_0.25", "slim_0.5", "slim_0.75", "inner_0.25", "inner_0.5",
                          "inner_0.75", "skip")
  c.distill.inherit = True
  c.distill.score_examples = 1000
  c.distill.train.epochs = 0.1
  c.refine.train.epochs = 0.1
  c.finetune.train.epochs = 8
  c.baselines.match = "total_cost"
  c.baselines.kd.alpha = 0.5
  c.select.metric = "macs"
  c.select.damage = "accuracy"
  c.select.budgets = (0.5, 0.25)
  return c
