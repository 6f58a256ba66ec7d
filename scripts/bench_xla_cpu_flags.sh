#!/usr/bin/env bash
# Does an XLA:CPU flag make training faster on this CPU? scripts/bench.py (JAX against PyTorch
# eager in the same run, so every file carries its own ratio) once per flag set and model, one
# after another on a quiet machine; one file per run under results/bench_xla_cpu_flags/, and the
# summary of those files is results/bench_xla_cpu_flags.md (written by hand from them).
#
#   bash scripts/bench_xla_cpu_flags.sh                       # every model and flag set
#   MODELS=mobilenet_v2 SETS="default onednn" bash scripts/bench_xla_cpu_flags.sh
#
# The flag sets: XLA's defaults; oneDNN for the dots and convolutions XLA:CPU hands to a library
# (xla_cpu_use_onednn); XNNPACK fusions (xla_cpu_use_xnnpack); and oneDNN with its experimental
# custom calls (xla_cpu_experimental_onednn_custom_call); YNNPACK, to which this jaxlib already
# hands the forward convolutions and dots by default, switched off (no_ynn) or given every fusion
# type it has (ynn_all). Before each bench, scripts/xla_cpu_library_calls.py appends what the set
# hands to a library to library_calls.txt. The "_conv" sets also run MobileNetV2's depthwise
# convolutions as lax grouped convolutions instead of this project's CPU form (shifted sums,
# models/layers.py), in case a library makes the grouped form the faster one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=results/bench_xla_cpu_flags
MODELS=${MODELS:-"mobilenet_v2 resnet56"}
SETS=${SETS:-"default onednn xnnpack onednn_custom_call no_ynn ynn_all default_conv onednn_conv xnnpack_conv"}
mkdir -p $OUT

flags_of() {
  case ${1%_conv} in
    default) echo "" ;;
    onednn) echo "--xla_cpu_use_onednn=true" ;;
    xnnpack) echo "--xla_cpu_use_xnnpack=true" ;;
    onednn_custom_call) echo "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true" ;;
    no_ynn) echo "--xla_cpu_experimental_ynn_fusion_type=" ;;
    ynn_all) echo "--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot,eltwise,reduce,dot" ;;
    *) echo "unknown flag set '$1'" >&2; exit 2 ;;
  esac
}

for model in $MODELS; do
  case $model in  # the widths of the value issue's teachers; the candidates of the earlier benches
    mobilenet_v2) args=(--width 0.35 --candidates keep,slim_0.5,ir_1,ir_3,skip) ;;
    resnet56) args=(--width 0.25) ;;
    *) args=(--width 0.5) ;;
  esac
  for set in $SETS; do
    form=auto
    [[ $set == *_conv ]] && form=convolution
    [[ $form == convolution && $model != mobilenet_v2 ]] && continue  # no depthwise layers
    XLA_FLAGS="$(flags_of $set)" $PY scripts/xla_cpu_library_calls.py --model $model "${args[@]:0:2}" \
      | sed "s/^/$set: /" >> $OUT/library_calls.txt
    XLA_FLAGS="$(flags_of $set)" $PY scripts/bench.py --model $model "${args[@]}" \
      --depthwise_form $form --skip_torch_compile --epoch_batches 0 --out $OUT/${model}_$set.md
  done
done
