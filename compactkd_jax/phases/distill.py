"""The distill phase (design stages 3-4): train every candidate block (blockwise.py), keep the
candidate weights in `<workdir>/distill/candidates`, score them (score.py) into
`<workdir>/distill/scores.json`, what selection reads."""
import time

from compactkd_jax import blockwise, feed, score, train, workdir
from compactkd_jax.context import RunContext


def run(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = workdir.load_teacher(ctx)
  setup = blockwise.distill_setup(teacher_net, ctx.dataset.image_shape, ctx.cfg.distill.candidates)
  tcfg = ctx.cfg.distill.train
  if workdir.has_candidates(ctx):  # trained in an earlier, interrupted run: only scoring was left
    cand_vars = workdir.load_candidates(ctx)
    train_seconds = workdir.candidates_seconds(ctx)
  else:
    start, prior = time.perf_counter(), train.PriorWork()
    cand_vars = blockwise.run_schedule(ctx, setup, teacher_vars, tcfg, ctx.cfg.distill.schedule,
                                       prior)
    train_seconds = time.perf_counter() - start + prior.seconds
    workdir.save_candidates(ctx, cand_vars, train_seconds)
  cand_vars = feed.replicate(cand_vars, ctx.mesh)
  val = ctx.splits["validation"]
  if 0 < ctx.cfg.distill.score_examples < val.size:
    val = val.limit(ctx.cfg.distill.score_examples)
  start = time.perf_counter()
  scores = score.score(setup, teacher_vars, cand_vars, val, ctx.preprocess,
                       ctx.mesh, ctx.cfg.data.eval_batch_size, ctx.dataset.image_shape)
  score_seconds = time.perf_counter() - start
  workdir.save_scores(ctx, scores)
  rows = [(b, c, v["nmse"], v["hybrid_accuracy"]) for b, m in scores["blocks"].items()
          for c, v in m.items()]
  steps = train.num_steps(tcfg, ctx.splits["train"].size)
  groups = 1 if ctx.cfg.distill.schedule == "parallel" else len(setup.menus)
  return {"schedule": ctx.cfg.distill.schedule, "candidates": len(rows),
          "trained_candidates": sum(len(c) for _, c in setup.menus),
          "worst_nmse": max(r[2] for r in rows if r[1] != "skip"),
          # What the phase cost: training images (each through the teacher and every candidate
          # of its block), and validation images scored per block (prefix, candidates, suffix).
          "steps": steps * groups, "train_images": steps * groups * tcfg.batch_size,
          "score_images": val.size * len(setup.all_menus),
          "train_seconds": train_seconds, "score_seconds": score_seconds}
