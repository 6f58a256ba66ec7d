#!/usr/bin/env bash
# The trade-off experiments of the value issue, one after another (the 2 cores run one heavy job at
# a time; the equal-cost baselines time their steps, so nothing else should run beside them).
# Every command resumes from its workdir: rerun this script after an interruption.
#   1. ResNet-20 (the committed quickstart teacher, plateaued): students fine-tuned 8 epochs with
#      weight inheritance, at 50% and 25% of the MACs, seeds 0 and 1, baselines at equal total
#      cost; summary: results/tradeoff_resnet20_8ep.md (scripts/summarize_tradeoff.py).
#   2. The Torch-Pruning peer on those workdirs (global ranking, the variant validation chose in
#      every 4-epoch run of results/peer_resnet20.md), 1 thread pinned to one core; summary:
#      results/peer_resnet20_8ep.md (scripts/summarize_peer.py). Its matched steps come from our
#      recorded walls, not from its own timing, so a job on the other core does not bias them.
#   3. The ResNet-56 teacher (width 0.25) trained to a plateau: configs/resnet56_teacher.py, pinned
#      to the other core beside step 2 (committed as teachers/fashion_mnist_resnet56_w0.25).
#   4. The ResNet-56 sweep: the same recipe from that teacher, seeds 0 and 1, 50% and 25% MACs;
#      summary: results/tradeoff_resnet56_8ep.md. The seeds run one after the other pinned to core 0,
#      beside step 5 on core 1 (when it was measured, seed 0 ran alone up to its fine-tunes); the
#      baselines are priced side by side, so the other core's job does not bias their steps.
#   5. Menu ablation, why Torch-Pruning wins at 50% (results/peer_resnet20_8ep.md): step 1's recipe
#      with "inner" candidates added to the menu (a basic block narrowed only between its two 3x3
#      convs, inherited: the block structured pruning leaves), seeds 0 and 1, up to the fine-tune,
#      pinned to core 1. First a control: the default menu on the current code up to refinement,
#      whose scores must equal step 1's (runs/sweep8_s0 was made by an older commit). Summary against
#      steps 1-2: results/inner_ablation_resnet20_8ep.md (scripts/summarize_menu_ablation.py).
#   6. The Torch-Pruning peer on the ResNet-56 workdirs of step 4 (global ranking); summary:
#      results/peer_resnet56_8ep.md. Workdirs do not outlive a session, and step 4's were gone when
#      this step ran, so it rebuilds them up to refinement with step 4's recipe (distill and refine
#      0.1 epoch: the quickstart's values when step 4 ran), and the peer takes our results and cost
#      from step 4's committed summaries (--ours; it checks that the rebuilt plans are theirs). The
#      two seeds' peers run side by side, each pinned to one core with one thread: their steps come
#      from our recorded cost, not from their own timing.
#   7. Menu ablation on ResNet-56, where Torch-Pruning wins at 25% (results/peer_resnet56_8ep.md):
#      step 4's recipe with the inner candidates, seeds 0 and 1 side by side (each pinned to one
#      core), up to the fine-tune; seed 1 at 25% only (the budget where the menu is the question;
#      the session's time did not hold both); summary against steps 4 and 6 (their rebuilt
#      workdirs, their results from the committed sweep summaries):
#      results/inner_ablation_resnet56_8ep.md.
#   8. The baselines on step 7's students: scratch and Hinton KD at equal total cost on the inner
#      students' architecture at 25% MACs, the comparison of the value issue's 25% target (step 4's
#      baselines trained the default menu's architecture). Seeds side by side, each pinned to one
#      core (the pricing is side by side, so the other core's job does not bias the steps). Seed 0's
#      workdir swept (0.5, 0.25): its shared phases and its 25% folder are copied into a workdir
#      whose config lists 0.25 alone (seed 1's list), so that the baselines run for that budget
#      only; a budget's selection, refinement and fine-tune read nothing of the other budget.
#      Summary: results/tradeoff_resnet56_inner_8ep.md.
#   9. The 50% target (the student at or above its teacher): 8 against 16 fine-tune epochs from the
#      same refined ResNet-20 inner student, chosen on validation (details at the step).
#      Summary: results/finetune_length_resnet20_50.md.
#  10. The 50% target, the fine-tune's loss: from step 9's refined students, 8-epoch fine-tunes with
#      feature hints (beta 1), KD alpha 0.5 instead of 0.9, KD temperature 2 instead of 4, against
#      step 9's 8-epoch base, chosen on validation (details at the step).
#      Summary: results/finetune_loss_resnet20_50.md.
#  11. The 25% target on ResNet-20: step 5's inner student at 25% MACs (the menu validation chose
#      there, results/inner_ablation_resnet20_8ep.md) fine-tuned with KD alpha 0.5 (validation's
#      choice for this recipe in step 10) instead of step 5's 0.9. Seeds side by side, each pinned
#      to one core. Summary: results/finetune_alpha_resnet20_25.md. Scratch and Hinton KD at equal
#      total cost on this architecture (about 85 minutes per seed on one core, at the speed this
#      step ran) did not fit the session beside it: run in step 12.
#  12. The baselines on step 11's students: scratch and Hinton KD at equal total cost on the ResNet-20
#      inner student's architecture at 25% MACs, step 11's workdirs (a later session: the pricing
#      is side by side, so the machine's speed then does not bias the steps). Seeds side by side,
#      each pinned to one core. Summary: results/tradeoff_resnet20_inner_8ep.md.
#  13. The 50% target, the fine-tune's learning rate: step 10's recipe (KD alpha 0.5, validation's
#      choice there) rebuilt up to refinement, then 8-epoch fine-tunes at lr 0.02 (the recipe's)
#      and 0.01 (the untried side: 0.05 lost 1.74 points in results/ablation_quickstart.md) from
#      the same refined student, chosen on validation. Seeds side by side, each pinned to one core.
#      Summary: results/finetune_lr_resnet20_50.md.
#  14. The 50% target, the student the fine-tune starts from: step 13's recipe (lr 0.02) with
#      distillation and refinement 0.5 epoch instead of 0.1 (the library's refine default; 215
#      distillation steps per candidate instead of 43, refinement 215 steps per replaced block).
#      Selection reads the longer distillation's scores, so the plan may change. Seeds side by
#      side, each pinned to one core. Summary against step 13's lr-0.02 workdirs:
#      results/distill_length_resnet20_50.md.
#  15. The other two budgets of the value issue, 75% and 35% MACs, on ResNet-20: the recipe
#      validation chose for the inner menu (steps 5, 10, 13, 14: slim + inner, distill and refine
#      0.1 epoch, 8-epoch fine-tune, KD alpha 0.5, lr 0.02), one sweep per seed, scratch and Hinton
#      KD at equal total cost on each student's architecture. Seeds side by side, each pinned to one
#      core (about 2.5 hours per seed at 3 fine-tune steps/s: it runs across sessions, resuming).
#      Summary: results/tradeoff_resnet20_inner_7535_8ep.md.
#  16. The 50% target, a finer menu: step 13's recipe (lr 0.02) with the inner widths in eighths
#      (inner_0.375, inner_0.625, inner_0.875 added to the quarters), so that the knapsack can spend
#      the budget on slightly narrower blocks instead of skipping or quartering a few. Selection reads
#      the new candidates' scores, so the plan changes. Seeds side by side, each pinned to one core.
#      Summary against step 13's lr-0.02 runs: results/menu_eighths_resnet20_50.md (step 13's
#      workdirs were gone when this ran: their rows come from step 14's committed summary, --base).
#  17. Step 15's 35% budget alone. Workdirs do not outlive a session, and step 15's were gone with its
#      35% fine-tunes part-way (its 75% budget had finished and is committed): the 35% budget reruns
#      alone in new workdirs with step 15's recipe and seeds. The distillation reads no budget, so
#      selection reads the same scores and picks step 15's 35% plans (seed 0: 2,678,464 MACs).
#      Seeds side by side, each pinned to one core. Summary: results/tradeoff_resnet20_inner_35_8ep.md.
#  18. One measured curve of the inner-menu recipe on ResNet-20 from the committed results of steps
#      5, 11-12 (25%), 15 (75%) and 17 (35%): results/tradeoff_resnet20_inner.md, .json, .png
#      (scripts/combine_tradeoff.py; no workdir needed). Its 50% student (steps 13, 16) was compared
#      with its teacher only: no baselines at 50% on this recipe yet (step 19 adds them).
#  19. 50% MACs at equal total cost: the inner-menu recipe of step 15 at 50% alone, scratch and
#      Hinton KD on each student's architecture at equal total cost (steps 13 and 16 compared the
#      50% student with its teacher only). Seeds side by side, each pinned to one core.
#      Summary: results/tradeoff_resnet20_inner_50_8ep.md.
#  20. Step 18's curve with step 19's 50% added: all four budgets of the value issue, the same files
#      (step 18's command is replaced by this one).
#  21. Why the 50% student stays below its teacher, the capacity of its architecture: step 19's 50%
#      student architecture trained from random weights with the teacher's own recipe (25 epochs of
#      SGD, lr 0.1, cosine, weight decay 5e-4: configs/quickstart_teacher.py's), validation every
#      epoch, i.e. what that architecture reaches when trained to a plateau like its teacher. Step
#      19's workdirs are copied and only the scratch baseline is retrained (baselines.match
#      "epochs", 25). Seeds side by side, each pinned to one core (a package install shared the
#      cores in their first minutes: their walls are compared with nothing).
#      Summary: results/capacity_resnet20_50.md.
#  22. Does another architecture at half the MACs reach the teacher, and does the selection beat the
#      plain choice? The uniformly narrowed student (select.uniform: every block "inner_0.5", its
#      inner width halved; 50.4% of the teacher's MACs, so the budget is 0.51) from step 19's teacher
#      and distillation (workdirs copied, their 50% folder removed), refined and fine-tuned with
#      ours' recipe, and its architecture trained from random weights like the teacher (step 21's
#      25-epoch scratch). Seeds side by side, each pinned to one core.
#      Summary: results/uniform_resnet20_50.md.
#  23. A third seed of ours at half the MACs, selected (step 19) and uniform (step 22), without
#      baselines: seed 2's teacher and distillation once, then both students side by side, one per
#      core. Summary: results/uniform_resnet20_50.md (seed 2 rows).
#  24. ResNet-56's other two budgets of the value issue, 75% and 35% MACs: steps 7 and 8's recipe
#      (the committed w0.25 teacher, slim + inner menu, distill and refine 0.1 epoch, 8-epoch
#      fine-tune), one sweep per seed with scratch and Hinton KD at equal total cost on each
#      student's own architecture. Seeds side by side, each pinned to one core; about six hours, so
#      it ran across sessions from runs/r56_inner7535_s<seed>. Those workdirs were lost before the
#      35% baselines finished (a session's workdirs do not outlive it), so the 35% budget reran
#      alone from runs/r56_inner35_s<seed> (2.6 h with its baselines); scripts/combine_tradeoff.py
#      joins the two budgets' committed results.json files.
#      To free the cores meanwhile, kill and rerun rather than pause (SIGSTOP): a paused phase's
#      wall clock keeps running, and our phases' walls price the equal-cost baselines. (Pausing a
#      baseline is harmless: its steps are fixed before it trains.)
#      Summary: results/tradeoff_resnet56_inner_7535_8ep.md.
#  25. The MobileNetV2 teacher of the value issue's MobileNetV2 rows (50% MACs, 1/5.2 params): width
#      0.35 trained to a plateau with the ResNet teachers' recipe, configs/mobilenet_v2_teacher.py,
#      on both cores. Hours on this CPU (depthwise convolutions are slow on XLA:CPU), so it runs
#      across sessions and resumes from runs/mbv2_teacher, parked at each session's end
#      (scripts/park.sh, parked/README.md); committed as teachers/fashion_mnist_mobilenet_v2_w0.35
#      (validation 93.98%, test 93.62% after its 30 epochs, its curve in that folder's README).
#  26. MobileNetV2's row of the value issue: 50% MACs and 1/5.2 of the parameters, from that
#      teacher, with the quickstart recipe of steps 7-8 and 24 (distill and refine 0.1 epoch, 8-epoch
#      fine-tune, baselines at equal total cost on each student's own architecture), seeds 0 and 1,
#      each pinned to one core. Menu: keep, slim_0.25/0.5/0.75, ir_1, ir_3, skip (the reproduction's
#      MobileNetV2 menu, configs/reproduce_fashion_mnist.py, with slim_0.75): with slim and skip alone
#      the smallest plan keeps 19.4% of the parameters, above 1/5.2 = 19.2%; the lower-expansion
#      inverted residuals reach it (a smoke run on a 30-step teacher: 78,522 of 408,650). One
#      metric per run, so per seed the params budget runs first and the MACs budget then starts from
#      a copy of its teacher and distillation (the two budgets share them; its ours' cost counts them
#      as measured in the first run). Hours per seed on one core: it runs across sessions, parked.
#      Summary: results/tradeoff_mobilenet_v2_8ep.md (both budgets; a budget's workdirs are not
#      kept once its results are committed: the lines after `wait` copy what is still in runs/).
set -x
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# One seed's results.json and each named budget's report.md, kept under results/<name>_runs/seed<seed>/.
keep_runs() {  # name seed workdir [budget...]
  local out=results/$1_runs/seed$2
  mkdir -p $out && cp $3/results.json $out/
  for b in "${@:4}"; do cp $3/budget_macs_$b/report.md $out/report_macs_$b.md; done
}
# One budget folder's results.json and report.md, as results/<name>_runs/seed<seed>/<prefix>*_macs_<budget>.*.
keep_budget() {  # name seed workdir budget [prefix]
  local out=results/$1_runs/seed$2
  mkdir -p $out && cp $3/budget_macs_$4/results.json $out/${5:-}results_macs_$4.json
  cp $3/budget_macs_$4/report.md $out/${5:-}report_macs_$4.md
}
# The distill and refine lengths of the quickstart config when these ran (it has moved to 0.05 since:
# results/ablation_length.md), pinned so that a rerun reproduces the committed numbers.
RECIPE=(--config.distill.train.epochs=0.1 --config.refine.train.epochs=0.1)
for seed in 0 1; do
  $PY -m compactkd_jax.main --config configs/quickstart.py --workdir runs/sweep8_s$seed \
    --config.seed=$seed --config.select.budgets="(0.5,0.25)" --config.finetune.train.epochs=8 \
    "${RECIPE[@]}" --config.report.runtimes="()" > runs/sweep8_s$seed.log 2>&1 || exit 1
done
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet20_8ep runs/sweep8_s0 runs/sweep8_s1
taskset -c 1 $PY -m compactkd_jax.main --config configs/resnet56_teacher.py \
  --workdir runs/r56_teacher > runs/r56_teacher.log 2>&1 &
for seed in 0 1; do
  taskset -c 0 $PY scripts/peer_pruning.py --workdir runs/sweep8_s$seed --variants global \
    --budgets budget_macs_0.5,budget_macs_0.25 --threads 1 > runs/peer8_s$seed.log 2>&1 || exit 1
done
$PY scripts/summarize_peer.py --out results/peer_resnet20_8ep runs/sweep8_s0 runs/sweep8_s1
wait
COMMON=(--config configs/quickstart.py --config.select.budgets="(0.5,0.25)"
        --config.finetune.train.epochs=8 --config.report.runtimes="()" "${RECIPE[@]}")
(
  taskset -c 1 $PY -m compactkd_jax.main "${COMMON[@]}" --workdir runs/ctl8_s0 --config.seed=0 \
    "--config.phases=('teacher','distill','select','refine')" > runs/ctl8_s0.log 2>&1 || exit 1
  for seed in 0 1; do
    taskset -c 1 $PY -m compactkd_jax.main "${COMMON[@]}" --workdir runs/inner8_s$seed \
      --config.seed=$seed "--config.phases=('teacher','distill','select','refine','finetune')" \
      "--config.distill.candidates=('keep','slim_0.25','slim_0.5','slim_0.75','inner_0.25','inner_0.5','inner_0.75','skip')" \
      >> runs/inner8_s$seed.log 2>&1 || exit 1
  done
) &
for seed in 0 1; do
  taskset -c 0 $PY -m compactkd_jax.main --config configs/quickstart.py --workdir runs/r56_sweep8_s$seed \
    --config.seed=$seed --config.teacher.model=resnet56 --config.teacher.options.width=0.25 \
    --config.teacher.checkpoint=teachers/fashion_mnist_resnet56_w0.25 \
    --config.select.budgets="(0.5,0.25)" --config.finetune.train.epochs=8 \
    "${RECIPE[@]}" --config.report.runtimes="()" >> runs/r56_sweep8_s$seed.log 2>&1 || exit 1
done
wait
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet56_8ep runs/r56_sweep8_s0 runs/r56_sweep8_s1
for seed in 0 1; do  # step 6 reads these results.json (its --ours)
  keep_runs tradeoff_resnet56_8ep $seed runs/r56_sweep8_s$seed 0.5 0.25
  cp runs/r56_sweep8_s$seed/report.md results/tradeoff_resnet56_8ep_runs/seed$seed/sweep_report.md
done
$PY scripts/summarize_menu_ablation.py --out results/inner_ablation_resnet20_8ep --label "slim + inner" \
  --control runs/sweep8_s0,runs/sweep8_s1 --variant runs/inner8_s0,runs/inner8_s1 \
  --command "scripts/tradeoff_experiments.sh steps 1, 2 and 5"
for seed in 0 1; do
  $PY -m compactkd_jax.main "${COMMON[@]}" --workdir runs/r56_sweep8_s$seed --config.seed=$seed \
    --config.teacher.model=resnet56 --config.teacher.options.width=0.25 \
    --config.teacher.checkpoint=teachers/fashion_mnist_resnet56_w0.25 \
    "--config.phases=('teacher','distill','select','refine')" >> runs/r56_sweep8_s$seed.log 2>&1 || exit 1
done
for seed in 0 1; do
  taskset -c $seed $PY scripts/peer_pruning.py --workdir runs/r56_sweep8_s$seed --variants global \
    --budgets budget_macs_0.5,budget_macs_0.25 --threads 1 \
    --ours results/tradeoff_resnet56_8ep_runs/seed$seed/results.json >> runs/r56_peer8_s$seed.log 2>&1 &
done
wait
$PY scripts/summarize_peer.py --out results/peer_resnet56_8ep --command "scripts/tradeoff_experiments.sh steps 4 and 6" \
  runs/r56_sweep8_s0 runs/r56_sweep8_s1
R56=(--config.teacher.model=resnet56 --config.teacher.options.width=0.25
     --config.teacher.checkpoint=teachers/fashion_mnist_resnet56_w0.25)
INNER="--config.distill.candidates=('keep','slim_0.25','slim_0.5','slim_0.75','inner_0.25','inner_0.5','inner_0.75','skip')"
BUDGETS=("(0.5,0.25)" "(0.25,)")
for seed in 0 1; do
  taskset -c $seed $PY -m compactkd_jax.main --config configs/quickstart.py \
    --config.select.budgets="${BUDGETS[$seed]}" --config.finetune.train.epochs=8 \
    --config.report.runtimes="()" "${RECIPE[@]}" "${R56[@]}" --workdir runs/r56_inner8_s$seed \
    --config.seed=$seed "--config.phases=('teacher','distill','select','refine','finetune')" "$INNER" \
    >> runs/r56_inner8_s$seed.log 2>&1 &
done
wait
$PY scripts/summarize_menu_ablation.py --out results/inner_ablation_resnet56_8ep --label "slim + inner" \
  --control runs/r56_sweep8_s0,runs/r56_sweep8_s1 --variant runs/r56_inner8_s0,runs/r56_inner8_s1 \
  --peer_table results/peer_resnet56_8ep.md --command "scripts/tradeoff_experiments.sh steps 4, 6 and 7"
B25=runs/r56_inner8_s0_b25
if [ ! -d $B25 ]; then
  mkdir -p $B25 && cp -a runs/r56_inner8_s0/{config.json,teacher,distill,checkpoints,budget_macs_0.25} $B25/
  $PY -c "import json; p='$B25/config.json'; c=json.load(open(p)); c['select']['budgets']=[0.25]; json.dump(c, open(p, 'w'), indent=2)"
fi
DIRS=($B25 runs/r56_inner8_s1)  # by seed
for seed in 0 1; do
  dir=${DIRS[$seed]}
  taskset -c $seed $PY -m compactkd_jax.main --config configs/quickstart.py --config.select.budgets="(0.25,)" \
    --config.finetune.train.epochs=8 --config.report.runtimes="()" "${RECIPE[@]}" "${R56[@]}" --workdir $dir \
    --config.seed=$seed "$INNER" "--config.phases=('teacher','distill','select','refine','finetune','baselines','report')" \
    >> $dir.bl.log 2>&1 &
done
wait
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet56_inner_8ep \
  --command "scripts/tradeoff_experiments.sh steps 4, 7 and 8" "${DIRS[@]}" \
  --note "ResNet-56 w0.25 teacher, the quickstart recipe with distill and refine 0.1 epoch and an 8-epoch fine-tune, the candidate menu with the inner candidates (slim + inner, results/inner_ablation_resnet56_8ep.md); baselines trained on the inner students' own architecture. Seed 0's 25% student was made in a (0.5, 0.25) sweep; its shared phases and 25% folder were copied into a workdir listing 0.25 alone so the baselines ran for that budget only (nothing of a budget's selection, refinement or fine-tune depends on the other budget)."
for seed in 0 1; do
  dir=${DIRS[$seed]}
  mkdir -p results/tradeoff_resnet56_inner_8ep_runs/seed$seed
  cp $dir/results.json results/tradeoff_resnet56_inner_8ep_runs/seed$seed/
  cp $dir/report.md results/tradeoff_resnet56_inner_8ep_runs/seed$seed/sweep_report.md
  cp $dir/budget_macs_0.25/report.md results/tradeoff_resnet56_inner_8ep_runs/seed$seed/report_macs_0.25.md
done
# 9. The 50% target (the student at or above its teacher): the fine-tune's length, chosen on the
#    validation split. Step 5's recipe (ResNet-20, slim + inner menu: the 50% student closest to its
#    teacher) at 50% MACs alone, up to refinement; then two fine-tunes from that same refined student,
#    8 epochs (step 5's) and 16, in copies of the workdir (a phase's training settings may change
#    while it has not started). Seeds side by side, each pinned to one core.
FT=(--config configs/quickstart.py --config.select.budgets="(0.5,)" --config.report.runtimes="()"
    "${RECIPE[@]}" "$INNER")
for seed in 0 1; do
  (
    taskset -c $seed $PY -m compactkd_jax.main "${FT[@]}" --workdir runs/ft8_s$seed --config.seed=$seed \
      --config.finetune.train.epochs=8 "--config.phases=('teacher','distill','select','refine')" \
      >> runs/ft8_s$seed.log 2>&1 || exit 1
    [ -d runs/ft16_s$seed ] || cp -a runs/ft8_s$seed runs/ft16_s$seed
    for epochs in 8 16; do
      taskset -c $seed $PY -m compactkd_jax.main "${FT[@]}" --workdir runs/ft${epochs}_s$seed \
        --config.seed=$seed --config.finetune.train.epochs=$epochs \
        "--config.phases=('teacher','distill','select','refine','finetune')" \
        >> runs/ft${epochs}_s$seed.log 2>&1 || exit 1
    done
  ) &
done
wait
$PY scripts/summarize_finetune.py --out results/finetune_length_resnet20_50 --budget budget_macs_0.5 \
  --command "scripts/tradeoff_experiments.sh step 9" runs/ft8_s0 runs/ft8_s1 runs/ft16_s0 runs/ft16_s1
# 10. The 50% target, the fine-tune's loss. Step 9's refined students (its 8-epoch workdirs, the
#     fine-tune's outputs left out of the copy) fine-tuned 8 epochs with one change each: feature
#     hints at beta 1 (the student keeps the teacher's block boundaries), the KD weight alpha 0.5
#     instead of 0.9 (more weight on the labels), the KD temperature 2 instead of 4. Step 9's 8-epoch
#     students are the base. Seeds side by side, each pinned to one core.
declare -A LOSS=([hints1]="--config.finetune.kd.hints=1.0" [alpha05]="--config.finetune.kd.alpha=0.5"
              [temp2]="--config.finetune.kd.temperature=2.0")
for seed in 0 1; do
  (
    for name in hints1 alpha05 temp2; do
      dir=runs/ft8_${name}_s$seed
      if [ ! -d $dir ]; then
        mkdir -p $dir/budget_macs_0.5/checkpoints
        cp -a runs/ft8_s$seed/{config.json,teacher,distill,checkpoints} $dir/
        cp -a runs/ft8_s$seed/budget_macs_0.5/{select,refine} $dir/budget_macs_0.5/
        cp -a runs/ft8_s$seed/budget_macs_0.5/checkpoints/refine_* $dir/budget_macs_0.5/checkpoints/
      fi
      taskset -c $seed $PY -m compactkd_jax.main "${FT[@]}" --workdir $dir --config.seed=$seed \
        --config.finetune.train.epochs=8 ${LOSS[$name]} \
        "--config.phases=('teacher','distill','select','refine','finetune')" >> $dir.log 2>&1 || exit 1
    done
  ) &
done
wait
$PY scripts/summarize_finetune.py --out results/finetune_loss_resnet20_50 --budget budget_macs_0.5 \
  --command "scripts/tradeoff_experiments.sh steps 9 and 10" runs/ft8_s0 runs/ft8_s1 \
  runs/ft8_hints1_s0 runs/ft8_hints1_s1 runs/ft8_alpha05_s0 runs/ft8_alpha05_s1 runs/ft8_temp2_s0 \
  runs/ft8_temp2_s1
# 11. The 25% target on ResNet-20 (details at the top). 25% alone: a budget's selection, refinement
#     and fine-tune read nothing of another budget, so the students are step 5's 25% plans.
# One seed's ResNet-20 inner-menu run (KD alpha 0.5, 8-epoch fine-tune) of the given budgets up to
# the given phases, in runs/<name>_s<seed>, pinned to the seed's core (or to $CORE), in the
# background (steps 11, 12, 15, 17, 19, 21, 22 and 23).
r20_inner() {  # seed budgets name phases log-suffix [flags...]
  taskset -c ${CORE:-$1} $PY -m compactkd_jax.main --config configs/quickstart.py --config.select.budgets="$2" \
    --config.finetune.train.epochs=8 --config.finetune.kd.alpha=0.5 --config.report.runtimes="()" \
    "${RECIPE[@]}" "$INNER" --workdir runs/$3_s$1 --config.seed=$1 \
    "--config.phases=($4)" "${@:6}" >> runs/$3_s$1$5.log 2>&1 &
}
for seed in 0 1; do
  r20_inner $seed "(0.25,)" r20_inner25 "'teacher','distill','select','refine','finetune','report'" ""
done
wait
for seed in 0 1; do
  mkdir -p results/finetune_alpha_resnet20_25_runs/seed$seed
  cp runs/r20_inner25_s$seed/budget_macs_0.25/report.md results/finetune_alpha_resnet20_25_runs/seed$seed/
  cp runs/r20_inner25_s$seed/budget_macs_0.25/finetune/result.json \
    results/finetune_alpha_resnet20_25_runs/seed$seed/finetune_result.json
done
# 12. The baselines on step 11's students (details at the top), then the report with them (step 11's
#     report, made without baselines, is deleted: a report refuses inputs that changed under it).
for seed in 0 1; do
  dir=runs/r20_inner25_s$seed
  [ -f $dir/budget_macs_0.25/baseline_kd/result.json ] || rm -rf $dir/budget_macs_0.25/report
  r20_inner $seed "(0.25,)" r20_inner25 "'teacher','distill','select','refine','finetune','baselines','report'" .bl
done
wait
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet20_inner_8ep \
  --command "scripts/tradeoff_experiments.sh steps 5, 11 and 12" runs/r20_inner25_s0 runs/r20_inner25_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued), the quickstart recipe with distill and refine 0.1 epoch, the candidate menu with the inner candidates (slim + inner, results/inner_ablation_resnet20_8ep.md), 25% MACs alone, an 8-epoch fine-tune with KD alpha 0.5 (results/finetune_alpha_resnet20_25.md); baselines trained on the inner student's own architecture. Ours ran in one session (step 11, a slow machine: 1.3 fine-tune steps/s per core), the baselines in a later one (step 12, 3-4 steps/s per core) from the same workdirs: their steps were priced against our fine-tune step side by side in their own run, so the walls do not compare across the two and the images do (the scratch step has no teacher pass and costs 0.78 of ours, so scratch sees more images)."
for seed in 0 1; do
  keep_runs tradeoff_resnet20_inner_8ep $seed runs/r20_inner25_s$seed 0.25
done
# 13. The 50% target, the fine-tune's learning rate (details at the top).
for seed in 0 1; do
  (
    base=runs/ft8a_lr02_s$seed
    taskset -c $seed $PY -m compactkd_jax.main "${FT[@]}" --workdir $base --config.seed=$seed \
      --config.finetune.train.epochs=8 --config.finetune.kd.alpha=0.5 \
      "--config.phases=('teacher','distill','select','refine')" >> $base.log 2>&1 || exit 1
    [ -d runs/ft8a_lr01_s$seed ] || cp -a $base runs/ft8a_lr01_s$seed
    for lr in 02 01; do
      taskset -c $seed $PY -m compactkd_jax.main "${FT[@]}" --workdir runs/ft8a_lr${lr}_s$seed \
        --config.seed=$seed --config.finetune.train.epochs=8 --config.finetune.kd.alpha=0.5 \
        --config.finetune.train.learning_rate=0.$lr \
        "--config.phases=('teacher','distill','select','refine','finetune')" >> runs/ft8a_lr${lr}_s$seed.log 2>&1 || exit 1
    done
  ) &
done
wait
$PY scripts/summarize_finetune.py --out results/finetune_lr_resnet20_50 --budget budget_macs_0.5 \
  --command "scripts/tradeoff_experiments.sh step 13" runs/ft8a_lr02_s0 runs/ft8a_lr02_s1 \
  runs/ft8a_lr01_s0 runs/ft8a_lr01_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued: validation 94.04%, test 93.47%), 50% MACs alone, the slim + inner menu, distill and refine 0.1 epoch, an 8-epoch KD fine-tune with alpha 0.5 (validation's choice in step 10), T 4; seeds 0 and 1 side by side, each pinned to one core."
# 14. The 50% target, the student's start (details at the top).
# One seed's 50%-MACs student of step 13's recipe (KD alpha 0.5, 8-epoch fine-tune, lr 0.02) with the
# given distill/refine flags, up to the fine-tune, in runs/<name>_s<seed>, pinned to the seed's core,
# in the background (steps 14 and 16).
r20_50() {  # seed name flags...
  local seed=$1 name=$2
  shift 2
  taskset -c $seed $PY -m compactkd_jax.main --config configs/quickstart.py --config.select.budgets="(0.5,)" \
    --config.report.runtimes="()" "$@" --workdir runs/${name}_s$seed --config.seed=$seed \
    --config.finetune.train.epochs=8 --config.finetune.kd.alpha=0.5 \
    "--config.phases=('teacher','distill','select','refine','finetune')" >> runs/${name}_s$seed.log 2>&1 &
}
for seed in 0 1; do
  r20_50 $seed ft8a_long --config.distill.train.epochs=0.5 --config.refine.train.epochs=0.5 "$INNER"
done
wait
$PY scripts/summarize_finetune.py --out results/distill_length_resnet20_50 --budget budget_macs_0.5 \
  --stages distill,refine,finetune --command "scripts/tradeoff_experiments.sh steps 13 and 14" \
  runs/ft8a_lr02_s0 runs/ft8a_lr02_s1 runs/ft8a_long_s0 runs/ft8a_long_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued: validation 94.04%, test 93.47%), 50% MACs alone, the slim + inner menu, an 8-epoch KD fine-tune with alpha 0.5 and lr 0.02 (validation's choices in steps 10 and 13), T 4; the base is step 13's lr-0.02 workdirs; seeds 0 and 1 side by side, each pinned to one core."
# 15. 75% and 35% MACs (details at the top).
for seed in 0 1; do
  r20_inner $seed "(0.75,0.35)" r20_inner7535 "'teacher','distill','select','refine','finetune','baselines','report'" ""
done
wait
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet20_inner_7535_8ep \
  --command "scripts/tradeoff_experiments.sh step 15" runs/r20_inner7535_s0 runs/r20_inner7535_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued), the quickstart recipe with distill and refine 0.1 epoch, the slim + inner menu, an 8-epoch fine-tune with KD alpha 0.5; baselines trained on each student's own architecture at equal total cost."
for seed in 0 1; do  # only 75% finished in these workdirs: its folder's results (step 20 reads them)
  keep_budget tradeoff_resnet20_inner_7535_8ep $seed runs/r20_inner7535_s$seed 0.75
done
# 16. The 50% target, a finer menu (details at the top).
EIGHTHS="--config.distill.candidates=('keep','slim_0.25','slim_0.5','slim_0.75','inner_0.25','inner_0.375','inner_0.5','inner_0.625','inner_0.75','inner_0.875','skip')"
for seed in 0 1; do
  r20_50 $seed ft8a_eighths "${RECIPE[@]}" "$EIGHTHS"
done
wait
$PY scripts/summarize_finetune.py --out results/menu_eighths_resnet20_50 --budget budget_macs_0.5 \
  --stages distill,refine,finetune --command "scripts/tradeoff_experiments.sh steps 13 and 16" \
  --base results/distill_length_resnet20_50.json:ft8a_lr02_s0,ft8a_lr02_s1 \
  runs/ft8a_eighths_s0 runs/ft8a_eighths_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued: validation 94.04%, test 93.47%), 50% MACs alone, distill and refine 0.1 epoch, an 8-epoch KD fine-tune with alpha 0.5 and lr 0.02 (validation's choices in steps 10 and 13), T 4; the base is step 13's lr-0.02 workdirs (the quarters menu); seeds 0 and 1 side by side, each pinned to one core."
# 17. Step 15's 35% budget alone (details at the top).
for seed in 0 1; do
  r20_inner $seed "(0.35,)" r20_inner35 "'teacher','distill','select','refine','finetune','baselines','report'" ""
done
wait
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet20_inner_35_8ep \
  --command "scripts/tradeoff_experiments.sh step 17" runs/r20_inner35_s0 runs/r20_inner35_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued), the quickstart recipe with distill and refine 0.1 epoch, the slim + inner menu, an 8-epoch fine-tune with KD alpha 0.5; baselines trained on each student's own architecture at equal total cost. Step 15's 35% budget rerun alone (step 15's workdirs were gone part-way)."
for seed in 0 1; do
  keep_runs tradeoff_resnet20_inner_35_8ep $seed runs/r20_inner35_s$seed 0.35
done
# 18. Superseded by step 20 (the same files, with step 19's 50% added).
# 19. 50% MACs at equal total cost (details at the top).
for seed in 0 1; do
  r20_inner $seed "(0.5,)" r20_inner50 "'teacher','distill','select','refine','finetune','baselines','report'" ""
done
wait
$PY scripts/summarize_tradeoff.py --out results/tradeoff_resnet20_inner_50_8ep \
  --command "scripts/tradeoff_experiments.sh step 19" runs/r20_inner50_s0 runs/r20_inner50_s1 \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued), the quickstart recipe with distill and refine 0.1 epoch, the slim + inner menu, an 8-epoch fine-tune with KD alpha 0.5; baselines trained on each student's own architecture at equal total cost."
for seed in 0 1; do
  keep_runs tradeoff_resnet20_inner_50_8ep $seed runs/r20_inner50_s$seed 0.5
done
# 20. The curve over all four budgets (details at the top).
R=results
$PY scripts/combine_tradeoff.py --out results/tradeoff_resnet20_inner \
  --command "scripts/tradeoff_experiments.sh steps 5, 11-12 (25%), 15 (75%), 17 (35%), 19 (50%); then step 20 (scripts/combine_tradeoff.py)" \
  --note "ResNet-20 w0.5 teacher (committed, 25 epochs, plateaued), the quickstart recipe with distill and refine 0.1 epoch, the slim + inner menu, an 8-epoch fine-tune with KD alpha 0.5; baselines trained on each student's own architecture at equal total cost, priced against our fine-tune step side by side in their own run. The budgets ran in different sessions (25%: ours on a slower machine than its baselines, so its walls do not compare across methods and its images do); the per-budget summaries say how each ran." \
  --seed 0 $R/tradeoff_resnet20_inner_7535_8ep_runs/seed0/results_macs_0.75.json \
    $R/tradeoff_resnet20_inner_50_8ep_runs/seed0/results.json \
    $R/tradeoff_resnet20_inner_35_8ep_runs/seed0/results.json $R/tradeoff_resnet20_inner_8ep_runs/seed0/results.json \
  --seed 1 $R/tradeoff_resnet20_inner_7535_8ep_runs/seed1/results_macs_0.75.json \
    $R/tradeoff_resnet20_inner_50_8ep_runs/seed1/results.json \
    $R/tradeoff_resnet20_inner_35_8ep_runs/seed1/results.json $R/tradeoff_resnet20_inner_8ep_runs/seed1/results.json
# 21. The 50% architecture trained like its teacher (details at the top).
for seed in 0 1; do
  cap=runs/r20_cap50_s$seed
  if [ ! -d $cap ]; then  # step 19's workdir without its baselines and report
    cp -a runs/r20_inner50_s$seed $cap
    (cd $cap/budget_macs_0.5 && rm -rf baseline_* baselines checkpoints/baseline_* report report.md \
      results.json export tradeoff.png) && rm -f $cap/results.json $cap/report.md $cap/tradeoff.png
  fi
  r20_inner $seed "(0.5,)" r20_cap50 "'teacher','distill','select','refine','finetune','baselines'" "" \
    "--config.baselines.kinds=('scratch',)" --config.baselines.match=epochs \
    --config.baselines.train.epochs=25 --config.baselines.train.eval_every_steps=429
done
wait
for seed in 0 1; do  # the table is read from the logs' eval lines and these results
  mkdir -p results/capacity_resnet20_50_runs/seed$seed
  cp runs/r20_cap50_s$seed/budget_macs_0.5/baseline_scratch/result.json \
    results/capacity_resnet20_50_runs/seed$seed/scratch_25ep_result.json
done
# 22. The uniform student at half the MACs, ours and its architecture's capacity (details at the top).
for seed in 0 1; do
  uni=runs/r20_uni50_s$seed
  if [ ! -d $uni ]; then  # step 19's teacher and distillation, no budget folder
    cp -a runs/r20_inner50_s$seed $uni
    rm -rf $uni/budget_macs_0.5 $uni/results.json $uni/report.md $uni/tradeoff.png
  fi
  r20_inner $seed "(0.51,)" r20_uni50 "'teacher','distill','select','refine','finetune','baselines','report'" "" \
    --config.select.uniform=inner_0.5 "--config.baselines.kinds=('scratch',)" \
    --config.baselines.match=epochs --config.baselines.train.epochs=25 \
    --config.baselines.train.eval_every_steps=429
done
wait
for seed in 0 1; do keep_budget uniform_resnet20_50 $seed runs/r20_uni50_s$seed 0.51; done
# 23. Seed 2 of steps 19 and 22's students (details at the top).
CORE=0 r20_inner 2 "(0.5,)" r20_inner50 "'teacher','distill'" ""
wait
[ -d runs/r20_uni50_s2 ] || cp -a runs/r20_inner50_s2 runs/r20_uni50_s2
CORE=0 r20_inner 2 "(0.5,)" r20_inner50 "'teacher','distill','select','refine','finetune','report'" ""
CORE=1 r20_inner 2 "(0.51,)" r20_uni50 "'teacher','distill','select','refine','finetune','report'" "" \
  --config.select.uniform=inner_0.5
wait
keep_budget uniform_resnet20_50 2 runs/r20_uni50_s2 0.51
keep_budget uniform_resnet20_50 2 runs/r20_inner50_s2 0.5 selected_
# 24. ResNet-56 at 75% and 35% MACs (details at the top).
r56_inner() {  # seed budgets workdir: one sweep pinned to core <seed>, in the background
  taskset -c $1 $PY -m compactkd_jax.main --config configs/quickstart.py \
    --config.select.budgets="$2" --config.finetune.train.epochs=8 \
    --config.report.runtimes="()" "${RECIPE[@]}" "${R56[@]}" --workdir $3 \
    --config.seed=$1 "$INNER" >> $3.log 2>&1 &
}
for seed in 0 1; do r56_inner $seed "(0.75,0.35)" runs/r56_inner7535_s$seed; done
wait
for seed in 0 1; do keep_budget tradeoff_resnet56_inner_7535_8ep $seed runs/r56_inner7535_s$seed 0.75; done
# The 35% budget as it landed: alone, in new workdirs. The sweep above lost its workdirs at a
# session's end before its 35% baselines had finished. A sweep's budgets share only the teacher and
# the distillation, so a (0.35,) sweep makes its 35% student the same way (the same recipe; the
# accuracies are not bit-identical to the lost run's: results/tradeoff_resnet56_inner_7535_8ep.md).
for seed in 0 1; do r56_inner $seed "(0.35,)" runs/r56_inner35_s$seed; done
wait
R=results/tradeoff_resnet56_inner_7535_8ep_runs
for seed in 0 1; do  # and each phase's result.json, distill's of this run too (distill.json is 75%'s)
  W=runs/r56_inner35_s$seed
  keep_budget tradeoff_resnet56_inner_7535_8ep $seed $W 0.35
  cp $W/distill/result.json $R/seed$seed/distill_macs_0.35.json
  for p in select refine finetune; do cp $W/budget_macs_0.35/$p/result.json $R/seed$seed/${p}_macs_0.35.json; done
done
$PY scripts/combine_tradeoff.py --out results/tradeoff_resnet56_inner_7535_8ep \
  --command "scripts/tradeoff_experiments.sh step 24" \
  --seed 0 $R/seed0/results_macs_0.75.json $R/seed0/results_macs_0.35.json \
  --seed 1 $R/seed1/results_macs_0.75.json $R/seed1/results_macs_0.35.json \
  --note "ResNet-56 w0.25 teacher (committed), the quickstart recipe with distill and refine 0.1 epoch and an 8-epoch fine-tune, the slim + inner menu (steps 7 and 8's recipe); baselines trained on each student's own architecture at equal total cost."
# 25. The MobileNetV2 teacher (details at the top), from its parked workdir where a session parked it.
[ -d runs/mbv2_teacher ] || [ ! -d parked/mbv2_teacher ] || bash scripts/park.sh --unpark mbv2_teacher runs/mbv2_teacher
$PY -m compactkd_jax.main --config configs/mobilenet_v2_teacher.py --workdir runs/mbv2_teacher \
  >> runs/mbv2_teacher.log 2>&1
# 26. MobileNetV2 at 1/5.2 params and 50% MACs (details at the top).
MBV2=(--config.teacher.model=mobilenet_v2 --config.teacher.options.width=0.35
      --config.teacher.checkpoint=teachers/fashion_mnist_mobilenet_v2_w0.35
      "--config.distill.candidates=('keep','slim_0.25','slim_0.5','slim_0.75','ir_1','ir_3','skip')")
mbv2() {  # seed metric budgets workdir: one budget of one seed, pinned to core <seed>
  [ -d $4 ] || [ ! -d parked/$(basename $4) ] || bash scripts/park.sh --unpark $(basename $4) $4
  taskset -c $1 $PY -m compactkd_jax.main --config configs/quickstart.py --config.select.metric=$2 \
    --config.select.budgets="$3" --config.finetune.train.epochs=8 --config.report.runtimes="()" \
    "${RECIPE[@]}" "${MBV2[@]}" --workdir $4 --config.seed=$1 >> $4.log 2>&1
}
for seed in 0 1; do
  (
    # A budget whose results are committed is done: its workdir need not outlive its session.
    [ -f results/tradeoff_mobilenet_v2_8ep_runs/seed$seed/results_params_0.192308.json ] ||
      mbv2 $seed params "(0.19230769,)" runs/mbv2_params_s$seed || exit 1
    M=runs/mbv2_macs_s$seed
    if [ ! -d $M ] && [ ! -d parked/mbv2_macs_s$seed ]; then  # the shared phases, copied
      mkdir -p $M && cp -a runs/mbv2_params_s$seed/{config.json,teacher,distill,checkpoints} $M/
    fi
    mbv2 $seed macs "(0.5,)" $M
  ) &
done
wait
for seed in 0 1; do  # keep_budget's files, for either metric
  for b in params_0.192308 macs_0.5; do
    R=results/tradeoff_mobilenet_v2_8ep_runs/seed$seed && mkdir -p $R
    [ -d runs/mbv2_${b%_*}_s$seed ] || continue  # committed by the session that finished it
    cp runs/mbv2_${b%_*}_s$seed/budget_$b/results.json $R/results_$b.json
    cp runs/mbv2_${b%_*}_s$seed/budget_$b/report.md $R/report_$b.md
  done
done
R=results/tradeoff_mobilenet_v2_8ep_runs
$PY scripts/combine_tradeoff.py --out results/tradeoff_mobilenet_v2_8ep \
  --command "scripts/tradeoff_experiments.sh step 26" \
  --seed 0 $R/seed0/results_params_0.192308.json $R/seed0/results_macs_0.5.json \
  --seed 1 $R/seed1/results_params_0.192308.json $R/seed1/results_macs_0.5.json \
  --note "MobileNetV2 w0.35 teacher (committed), the quickstart recipe with distill and refine 0.1 epoch and an 8-epoch fine-tune, the menu keep, slim_0.25/0.5/0.75, ir_1, ir_3, skip; baselines trained on each student's own architecture at equal total cost."
