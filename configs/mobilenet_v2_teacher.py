"""The MobileNetV2 teacher of the value issue's MobileNetV2 rows: MobileNetV2-CIFAR at width 0.35
(12.84M MACs, 408,650 parameters on 28 x 28 x 1) trained to a plateau on the full Fashion-MNIST
(55,000 train / 5,000 validation), with the recipe of the committed ResNet teachers
(configs/quickstart_teacher.py, configs/resnet56_teacher.py): SGD lr 0.1, cosine, batch 128,
weight decay 5e-4, validation accuracy and a checkpoint every epoch.

  python -m compactkd_jax.main --config configs/mobilenet_v2_teacher.py --workdir runs/mbv2_teacher

About 2.1x ResNet-56 w0.25's MACs, and depthwise convolutions run slowly on XLA:CPU (125 images/s
for a train step on the 2-core CPU: results/bench_cpu2core_mobilenet_v2.md), so the 30 epochs take
hours there: it runs in the background across sessions (scripts/tradeoff_experiments.sh step 25)
and resumes from its last epoch when the same command is run again. Result (2026-12-05, 254 min of
training across two sessions): validation 93.98%, test 93.62%, within 0.4 points over the last
three epochs; committed as teachers/fashion_mnist_mobilenet_v2_w0.35 with its curve.
"""
from compactkd_jax.config import teacher_to_plateau


def get_config():
  return teacher_to_plateau("mobilenet_v2", width=0.35, epochs=30)
