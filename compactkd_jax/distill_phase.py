"""The distill phase: train every candidate block (distill.py), keep the candidate weights as an
orbax checkpoint in `<workdir>/distill/candidates`, score them (score.py) into `scores.json`."""
import os

import jax
import orbax.checkpoint as ocp

from compactkd_jax import distill, feed, score, teacher
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError

CANDIDATES_DIR = ("distill", "candidates")


def build_plan(ctx: RunContext, teacher_net) -> distill.BlockPlan:
  return distill.plan_blocks(teacher_net, ctx.dataset.image_shape, ctx.cfg.distill.candidates)


def load_candidates(ctx: RunContext, plan: distill.BlockPlan) -> dict:
  abstract = jax.eval_shape(lambda: distill.init_candidates(plan, ctx.cfg.seed))
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return ckptr.restore(ctx.path(*CANDIDATES_DIR), abstract)
  except Exception as e:  # orbax raises many types for missing, truncated or mismatched files
    raise UserError(f"cannot restore the distilled candidates in {ctx.path(*CANDIDATES_DIR)} "
                    f"({str(e).splitlines()[0][:160]}); delete {ctx.path('distill')} to redo "
                    "the distill phase") from None


def run(ctx: RunContext) -> dict:
  teacher_net, teacher_vars = teacher.load(ctx)
  plan = build_plan(ctx, teacher_net)
  path = ctx.path(*CANDIDATES_DIR)
  if os.path.exists(path):  # trained in an earlier, interrupted run: only scoring was left
    cand_vars = load_candidates(ctx, plan)
  else:
    cand_vars = distill.run_schedule(ctx, plan, teacher_vars, ctx.cfg.distill.train,
                                     ctx.cfg.distill.schedule)
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(path, jax.device_get(cand_vars))
      ckptr.wait_until_finished()
  cand_vars = feed.replicate(cand_vars, ctx.mesh)
  val = ctx.splits["validation"]
  if 0 < ctx.cfg.distill.score_examples < val.size:
    val = val.limit(ctx.cfg.distill.score_examples)
  scores = score.score(plan, teacher_vars, cand_vars, val, ctx.preprocess,
                       ctx.mesh, ctx.cfg.data.eval_batch_size, ctx.dataset.image_shape)
  ctx.write_json(scores, "scores.json")
  rows = [(b, c, v["nmse"], v["hybrid_accuracy"]) for b, m in scores["blocks"].items()
          for c, v in m.items()]
  return {"schedule": ctx.cfg.distill.schedule, "candidates": len(rows),
          "trained_candidates": sum(len(c) for _, c in plan.menus),
          "worst_nmse": max(r[2] for r in rows if r[1] != "skip")}
