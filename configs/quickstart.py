"""The default main job: every phase on the full Fashion-MNIST, FLOPs budget 50% of the teacher.

  python -m compactkd_jax.main --config configs/quickstart.py --workdir runs/quickstart
  (or: bash scripts/quickstart.sh)

Teacher: ResNet-20 at width 0.5 (8/16/32 channels), 3 epochs; block-wise distillation 0.5 epoch;
refinement 0.1 epoch per block; fine-tune and both baselines 2 epochs each. The candidate menu leaves
out the depthwise candidates (dwsep, ir_t): XLA:CPU trains depthwise convolutions 10-15x slower
than dense ones; on GPU/TPU use the full menu.
Measured on the 2-core CPU (2026-11-25, clean clone, alone; results/quickstart/): 17 min 40 s;
teacher 90.02%, student 88.38% at 49.4% of the teacher's FLOPs, same student from scratch 86.98%,
Hinton-KD only 87.75%.
"""
from compactkd_jax.config import PHASES, default_config


def get_config():
  c = default_config()
  c.phases = PHASES
  c.teacher.model = "resnet20"
  c.teacher.options.width = 0.5
  c.teacher.train.epochs = 3
  c.teacher.train.log_every_steps = 100
  c.distill.candidates = ("keep", "slim_0.25", "slim_0.5", "slim_0.75", "skip")
  c.distill.train.epochs = 0.5
  c.distill.score_examples = 2000
  c.refine.train.epochs = 0.1
  c.finetune.train.epochs = 2
  c.baselines.train.epochs = 2
  c.select.metric = "flops"
  c.select.budget = 0.5
  return c
