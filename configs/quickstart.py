"""The default main job: every phase on the full Fashion-MNIST, FLOPs budget 50% of the teacher.

  python -m compactkd_jax.main --config configs/quickstart.py --workdir runs/quickstart
  (or: bash scripts/quickstart.sh)

Teacher: ResNet-20 at width 0.5 (8/16/32 channels), 2 epochs; block-wise distillation 0.25 epoch;
refinement 0.1 epoch per block; KD fine-tune and both baselines 2 epochs each. The candidate menu
leaves out the depthwise candidates (dwsep, ir_t): CPUs train depthwise convolutions at a fraction
of a dense conv's FLOP rate; on GPU/TPU use the full menu. Selection minimizes the summed normalized
MSE: on this recipe (same teacher and distillation, seed 0) its plan's fine-tuned student scored
87.68% against 87.00% for the plan that minimizes summed hybrid-accuracy drops.
Measured on the 2-core CPU (2026-11-25, alone, setup done; results/quickstart/): 11 min 50 s;
teacher 88.63%, student 87.68% at 48.7% of the teacher's FLOPs, same student from scratch 86.97%,
Hinton-KD only 86.70%.
"""
from compactkd_jax.config import default_config, short_schedule


def get_config():
  c = default_config()
  c.teacher.model = "resnet20"
  c.teacher.options.width = 0.5
  short_schedule(c, teacher_epochs=2, distill_epochs=0.25, student_epochs=2)
  c.select.metric = "flops"
  c.select.budget = 0.5
  c.select.damage = "mse"
  return c
