"""Full-width ResNet-56 on the full Fashion-MNIST, for one GPU (scripts/gpu/run.sh): a teacher
trained to its plateau (30 epochs, validation checked every epoch), then the student side exactly
as chosen on validation on the CPU for ResNet-56 (scripts/tradeoff_experiments.sh steps 7-8: the
quickstart's recipe with distillation and refinement 0.1 epoch, the slim + inner menu, an 8-epoch
fine-tune, at its batch size and learning rates: nothing is chosen anew here), budgets 50% and
25% of the MACs, ours against scratch and Hinton KD at equal total cost.

  python -m compactkd_jax.main --config configs/gpu_fashion_mnist_resnet56.py --workdir runs/gpu_r56

Measured on one H200 (results/h200_first_run.md): the teacher phase 126 s (validation 94.28%).
The distillation then ran over the full menu for 2 epochs (this config's recipe at that time) and
had not logged its 50th step after 290 s more; the slim + inner menu's parallel step compiles in
36 s on the 2-core CPU at this width, the full menu's in 99 s (another job running). The rest has
not run on a GPU yet. On the 2-core CPU, hours.
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
