"""The reproduction on the full Fashion-MNIST (scripts/reproduce.sh runs it; see results/fashion_mnist.md).

  python -m compactkd_jax.main --config configs/reproduce_fashion_mnist.py:resnet56 --workdir W \
      --config.seed=0 --config.select.metric=flops --config.select.budget=0.5

The argument after the colon picks the teacher: resnet56 (width 0.25: 4/8/16 channels) or
mobilenet_v2 (width 0.35). Both are scaled down, with short schedules, so that the whole table
fits a 2-core CPU: ResNet-56 at width 0.25 trains an epoch in about 3.5 min there (3 epochs in 680 s
with the cores shared, results/fashion_mnist.md; 30 in 103 min for teachers/fashion_mnist_resnet56_w0.25);
MobileNetV2 at width 0.35 at about 125 images/s (depthwise convolutions as shifted sums; 45 as XLA:CPU
grouped convolutions), an epoch in ~7 min. On an accelerator use width 1.0 and the epochs of the
paper.

The recipe is the same for every row of equal training cost: the student's KD fine-tune and both
baselines (from scratch; Hinton KD only) train the same architecture for the same epochs; the
baselines start at learning rate 0.1 (random init), the fine-tune at 0.02 (it starts from the
block-wise distilled weights).
"""
from compactkd_jax.config import CPU_CANDIDATES, default_config, short_schedule

TEACHERS = {
    "resnet56": dict(width=0.25, candidates=CPU_CANDIDATES, teacher_lr=0.1),
    # slim_0.25 makes the 1/5.2-parameters budget reachable: at width 0.35 the last 1 x 1 conv
    # (112 -> 1280) holds 36% of the parameters and only its rank-28 factorization fits.
    "mobilenet_v2": dict(width=0.35, candidates=("keep", "slim_0.25", "slim_0.5", "ir_1", "ir_3",
                                                 "skip"), teacher_lr=0.05),
}


def get_config(teacher: str = "resnet56"):
  if teacher not in TEACHERS:
    raise ValueError(f"unknown reproduction teacher {teacher!r}; valid: {sorted(TEACHERS)}")
  setting = TEACHERS[teacher]
  c = default_config()
  c.teacher.model = teacher
  c.teacher.options.width = setting["width"]
  c.teacher.train.learning_rate = setting["teacher_lr"]
  short_schedule(c, teacher_epochs=3, distill_epochs=0.5, student_epochs=2)
  c.distill.candidates = setting["candidates"]
  c.select.metric = "flops"
  c.select.budget = 0.5
  return c
