"""The distill phase: train every candidate block (distill.py), keep the candidate weights as an
orbax checkpoint in `<workdir>/distill/candidates`, score them (score.py) into `scores.json`."""
import os
import time

import jax
import orbax.checkpoint as ocp

from compactkd_jax import distill, feed, score, teacher, train
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

CANDIDATES_DIR = ("distill", "candidates")


def build_plan(ctx: RunContext, teacher_net) -> distill.BlockPlan:
  return distill.plan_blocks(teacher_net, ctx.dataset.image_shape, ctx.cfg.distill.candidates)


def load_candidates(ctx: RunContext, plan: distill.BlockPlan) -> dict:
  abstract = jax.eval_shape(lambda: distill.init_candidates(plan, ctx.cfg.seed))
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return ckptr.restore(ctx.shared_path(*CANDIDATES_DIR), abstract)
  except Exception as e:  # orbax raises many types for missing, truncated or mismatched files
    raise UserError(f"cannot restore the distilled candidates in {ctx.shared_path(*CANDIDATES_DIR)} "
                    f"({str(e).splitlines()[0][:160]}); delete {ctx.shared_path('distill')} to redo "
                    "the distill phase") from None


def run(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = teacher.load(ctx)
  plan = build_plan(ctx, teacher_net)
  path = ctx.path(*CANDIDATES_DIR)
  tcfg = ctx.cfg.distill.train
  start = time.perf_counter()
  if os.path.exists(path):  # trained in an earlier, interrupted run: only scoring was left
    cand_vars = load_candidates(ctx, plan)
  else:
    cand_vars = distill.run_schedule(ctx, plan, teacher_vars, tcfg, ctx.cfg.distill.schedule)
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(path, jax.device_get(cand_vars))
      ckptr.wait_until_finished()
  train_seconds = time.perf_counter() - start
  cand_vars = feed.replicate(cand_vars, ctx.mesh)
  val = ctx.splits["validation"]
  if 0 < ctx.cfg.distill.score_examples < val.size:
    val = val.limit(ctx.cfg.distill.score_examples)
  start = time.perf_counter()
  scores = score.score(plan, teacher_vars, cand_vars, val, ctx.preprocess,
                       ctx.mesh, ctx.cfg.data.eval_batch_size, ctx.dataset.image_shape)
  score_seconds = time.perf_counter() - start
  ctx.write_json(scores, "scores.json")
  rows = [(b, c, v["nmse"], v["hybrid_accuracy"]) for b, m in scores["blocks"].items()
          for c, v in m.items()]
  steps = train.num_steps(tcfg, ctx.splits["train"].size)
  groups = 1 if ctx.cfg.distill.schedule == "parallel" else len(plan.menus)
  return {"schedule": ctx.cfg.distill.schedule, "candidates": len(rows),
          "trained_candidates": sum(len(c) for _, c in plan.menus),
          "worst_nmse": max(r[2] for r in rows if r[1] != "skip"),
          # What the phase cost: training images (each through the teacher and every candidate
          # of its block), and validation images scored per block (prefix, candidates, suffix).
          "steps": steps * groups, "train_images": steps * groups * tcfg.batch_size,
          "score_images": val.size * len(plan.all_menus),
          "train_seconds": train_seconds, "score_seconds": score_seconds}
