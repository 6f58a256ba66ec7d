#!/usr/bin/env bash
# Run THERE (the GPU machine: no network; gpu_carry/ from prepare.sh travels with the tree):
#   bash scripts/gpu/run.sh            # < 9 minutes on one H200; tables into $OUT as they finish
#   bash scripts/gpu/run.sh --smoke    # the same script on CPU, tiny sizes (tests/test_gpu_script.py)
# 1. installs the carried wheels that are not importable there (into gpu_carry/site);
# 2. benchmarks, JAX against PyTorch eager and torch.compile side by side (scripts/bench.py):
#    ResNet-56 and MobileNetV2 at width 1.0, batch 256, f32 and bf16 (PyTorch: AMP bf16,
#    channels_last), plus MobileNetV2's depthwise convolutions as shifted sums against the grouped
#    convolution (the form is chosen per backend by this measurement);
# 3. reproduces at full width (configs/gpu_fashion_mnist_resnet56.py): a ResNet-56 teacher, budgets
#    50% and 25% MACs, ours against scratch and Hinton KD at equal total cost.
# A killed run still leaves every table that finished in $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:-runs/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$SMOKE" = 1 ] && PY=.venv/bin/python
export PYTHONPATH="$PWD/gpu_carry/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=2
DATA=/usr/share/datasets/fashion-mnist
[ -d gpu_carry/data ] && DATA="$PWD/gpu_carry/data"

for module in clu ml_collections yaml wrapt matplotlib; do
  if ! "$PY" -c "import $module" 2>/dev/null && [ -d gpu_carry/wheels ]; then
    "$PY" -m pip install -q --no-index --no-deps --target gpu_carry/site gpu_carry/wheels/*.whl
    break
  fi
done
"$PY" -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.txt"

bench() {  # name, then bench.py flags
  local name=$1; shift
  timeout "${BENCH_TIMEOUT:-150}" "$PY" scripts/bench.py --data_dir "$DATA" --machine h200 \
    --out "$OUT/bench_$name.md" "$@" > "$OUT/bench_$name.log" 2>&1 \
    || echo "bench $name failed or timed out (see bench_$name.log)" | tee -a "$OUT/failures.txt"
}
if [ "$SMOKE" = 1 ]; then
  # bf16 only: the f32 steps are the same code with the casts as no-ops.
  bench smoke_bf16 --tiny --skip_torch_compile --steps 2 --epoch_batches 2 --precision bf16
  REPRO=(--config.data.train_limit=1000 --config.data.validation_size=200
         --config.data.test_limit=200 --config.teacher.options.width=0.125
         --config.teacher.train.steps=6 --config.distill.train.steps=4 --config.refine.train.steps=2
         --config.finetune.train.steps=4 --config.baselines.match=epochs
         --config.baselines.train.steps=4 --config.distill.score_examples=100
         --config.report.throughput_batch_size=16 --config.data.eval_batch_size=100
         --config.distill.candidates="('keep','slim_0.5','skip')")
  for s in teacher distill refine finetune baselines; do
    REPRO+=(--config.$s.train.batch_size=32 --config.$s.train.log_every_steps=2
            --config.$s.train.checkpoint_every_steps=4)
  done
else
  for model in resnet56 mobilenet_v2; do
    for precision in f32 bf16; do
      bench "${model}_$precision" --model "$model" --width 1.0 --batch 256 --steps 20 \
        --warmup 3 --epoch_batches 5 --candidates all --precision "$precision" --channels_last
    done
  done
  bench mobilenet_v2_shifts --model mobilenet_v2 --width 1.0 --batch 256 --steps 20 --warmup 3 \
    --epoch_batches 5 --skip_torch_compile --depthwise_form shifts
  REPRO=()
fi
timeout "${REPRO_TIMEOUT:-400}" "$PY" -m compactkd_jax.main \
  --config configs/gpu_fashion_mnist_resnet56.py --workdir "$OUT/repro" \
  --config.data.data_dir="$DATA" "${REPRO[@]}" > "$OUT/repro.log" 2>&1 \
  || echo "reproduction failed or timed out (see repro.log)" | tee -a "$OUT/failures.txt"
cp "$OUT"/repro/report.md "$OUT/fashion_mnist_h200.md" 2>/dev/null
ls "$OUT"
[ ! -f "$OUT/failures.txt" ]
