#!/usr/bin/env bash
# The deployment experiments of results/deploy_latency.md, one after another (the 2 cores run one
# heavy job at a time). Short schedules: these runs measure where the students run and how fast,
# not how accurate they can become (the accuracy columns say so).
#   1. the quickstart's student under a latency budget (its teacher and distillation, reused):
#      python -m compactkd_jax.main --config configs/quickstart.py --workdir runs/lat_r20 \
#        --config.select.metric=latency --config.select.budget=0.5 --config.select.runtime=onnxruntime
#      (with runs/lat_r20 holding a copy of the quickstart workdir's teacher and distill phases)
#   2-4. below.
set -x
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SHORT="--config.phases=(\"teacher\",\"distill\",\"select\",\"refine\",\"finetune\",\"report\") --config.report.runtimes=(\"onnxruntime\",\"litert\") --config.refine.train.epochs=0.02 --config.distill.score_examples=1000"
# ResNet-56 (width 0.25), FLOPs 50%: the reproduction's budget, short schedule.
$PY -m compactkd_jax.main --config configs/reproduce_fashion_mnist.py:resnet56 --workdir runs/lat_r56_flops \
  $SHORT --config.teacher.train.epochs=1 --config.distill.train.epochs=0.25 --config.finetune.train.epochs=0.5 > runs/lat_r56_flops.log 2>&1
# MobileNetV2 (width 0.35), FLOPs 50%.
$PY -m compactkd_jax.main --config configs/reproduce_fashion_mnist.py:mobilenet_v2 --workdir runs/lat_mb_flops \
  $SHORT --config.teacher.train.epochs=1 --config.distill.train.epochs=0.25 --config.finetune.train.epochs=0.5 > runs/lat_mb_flops.log 2>&1
# MobileNetV2, latency 50% on ONNX Runtime: the same teacher and distillation.
mkdir -p runs/lat_mb_latency/checkpoints
cp -r runs/lat_mb_flops/{config.json,teacher,distill} runs/lat_mb_latency/
cp -r runs/lat_mb_flops/checkpoints/{teacher,distill} runs/lat_mb_latency/checkpoints/
$PY -m compactkd_jax.main --config configs/reproduce_fashion_mnist.py:mobilenet_v2 --workdir runs/lat_mb_latency \
  $SHORT --config.teacher.train.epochs=1 --config.distill.train.epochs=0.25 --config.finetune.train.epochs=0.5 \
  --config.select.metric=latency --config.select.budget=0.5 > runs/lat_mb_latency.log 2>&1
# ResNet-56 under a latency budget of 50%: the same teacher and distillation as above.
mkdir -p runs/lat_r56_latency/checkpoints
cp -r runs/lat_r56_flops/{config.json,teacher,distill} runs/lat_r56_latency/
cp -r runs/lat_r56_flops/checkpoints/{teacher,distill} runs/lat_r56_latency/checkpoints/
$PY -m compactkd_jax.main --config configs/reproduce_fashion_mnist.py:resnet56 --workdir runs/lat_r56_latency \
  $SHORT --config.teacher.train.epochs=1 --config.distill.train.epochs=0.25 --config.finetune.train.epochs=0.5 \
  --config.select.metric=latency --config.select.budget=0.5 > runs/lat_r56_latency.log 2>&1
echo done
