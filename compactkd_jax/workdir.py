"""The workdir: every path a phase writes, and every loader of what an earlier phase left there.
Phases never import each other; what one needs of another it reads through this module.

  config.json              the config the workdir belongs to (pipeline.py)
  teacher/                 result.json; model.json + variables/ unless config.teacher.checkpoint
  distill/                 result.json, candidates/ (every distilled candidate), scores.json
  budget_<metric>_<v>/     one folder per budget of a sweep, holding the per-budget phases below
  select/                  result.json, plan.json, chosen/ (the chosen candidates' variables)
  refine/                  result.json, model.json, variables/
  finetune/                result.json, model.json, variables/
  baselines/               result.json, matched_steps.json; baseline_<kind>/ each a saved model
  report/                  result.json; and at the top: results.json, report.md, tradeoff.png,
                           damage_curve.png, export/ (the student), deploy_teacher/
  checkpoints/<loop>/      the training checkpoints of every loop (resume)
  tensorboard/

In a sweep the shared phases (teacher, distill) are read at the sweep's top (`ctx.shared_path`).
"""
import os

import jax
import orbax.checkpoint as ocp

from compactkd_jax import artifacts, feed, files
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError
from compactkd_jax.models.net import BlockNet, LayerSpec

RESULT = "result.json"
TEACHER = "teacher"
CANDIDATES = ("distill", "candidates")
CANDIDATES_COST = ("distill", "candidates_cost.json")
SCORES = ("distill", "scores.json")
PLAN = ("select", "plan.json")
CHOSEN = ("select", "chosen")
REFINED = "refine"
FINETUNED = "finetune"
MATCHED_STEPS = ("baselines", "matched_steps.json")
RESULTS = "results.json"
EXPORT = "export"
DEPLOY_TEACHER = "deploy_teacher"
# Workdirs of older versions kept these at the top.
_LEGACY = {SCORES: ("scores.json",), PLAN: ("plan.json",)}


def baseline_dir(kind: str) -> str:
  return f"baseline_{kind}"


def checkpoint_prefix(phase: str) -> str:
  """The loops of `phase` are named `<prefix>...` (teacher, distill_<block>, baseline_<kind>...)."""
  return "baseline" if phase == "baselines" else phase


# The phases every budget of a sweep shares, kept at the sweep's top; the others run per budget.
SHARED_PHASES = ("teacher", "distill")


def read_result(ctx: RunContext, phase: str) -> dict | None:
  """A finished phase's result.json (None: not finished)."""
  return (ctx.read_shared_json if phase in SHARED_PHASES else ctx.read_json)(phase, RESULT)


# --- the teacher ---------------------------------------------------------------------------------

def teacher_dir(ctx: RunContext) -> str:
  """Where the teacher lives: the configured checkpoint (a workdir or a model dir) or this run's."""
  ckpt = ctx.cfg.teacher.checkpoint
  return _resolve_teacher(ckpt) if ckpt else ctx.shared_path(TEACHER)


def _resolve_teacher(ckpt: str) -> str:
  nested = os.path.join(ckpt, TEACHER)
  return nested if os.path.exists(os.path.join(nested, artifacts.SPEC_FILE)) else ckpt


def saved_teacher_spec(ckpt: str) -> dict:
  path = os.path.join(_resolve_teacher(ckpt), artifacts.SPEC_FILE)
  spec = files.read_json(path, fix="re-export or retrain that teacher")
  if spec is None:
    raise UserError(f"no saved teacher in {ckpt} ({artifacts.SPEC_FILE} missing); set "
                    "config.teacher.checkpoint to a workdir whose teacher phase finished")
  return spec


def saved_preprocess(ckpt: str, current: feed.Preprocess) -> feed.Preprocess:
  """The normalization saved with a teacher checkpoint, with this run's augmentation settings."""
  return artifacts.preprocess_of(saved_teacher_spec(ckpt), current.crop_padding, current.flip)


def load_teacher(ctx: RunContext) -> tuple[BlockNet, dict]:
  """The frozen teacher (net, variables), checked against the data it is about to see."""
  net, variables, spec = artifacts.load_model(teacher_dir(ctx))
  shape, classes = tuple(spec["image_shape"]), spec["num_classes"]
  if shape != ctx.dataset.image_shape or classes != ctx.dataset.num_classes:
    raise UserError(f"the teacher in {teacher_dir(ctx)} expects images {shape} and {classes} "
                    f"classes, but the data has {ctx.dataset.image_shape} and "
                    f"{ctx.dataset.num_classes}; use a teacher trained on this dataset")
  return net, feed.replicate(variables, ctx.mesh)


# --- saved networks ------------------------------------------------------------------------------

def save_model(ctx: RunContext, folder: str, net: BlockNet, variables: dict,
               extra: dict | None = None) -> dict:
  return artifacts.save_model(ctx.path(folder), net, variables, ctx.dataset.image_shape,
                              ctx.dataset.num_classes, ctx.preprocess, extra)


def has_model(ctx: RunContext, folder: str) -> bool:
  return os.path.exists(ctx.path(folder, artifacts.SPEC_FILE))


def load_model(ctx: RunContext, folder: str) -> tuple[BlockNet, dict]:
  """A network a phase saved in `<workdir>/<folder>/`, on the devices."""
  net, variables, _ = artifacts.load_model(ctx.path(folder))
  return net, feed.replicate(variables, ctx.mesh)


# --- distillation: candidates and scores ---------------------------------------------------------

def save_candidates(ctx: RunContext, cand_vars: dict, train_seconds: float) -> None:
  """The candidates and what training them cost, so a run interrupted while scoring still counts
  it."""
  if jax.tree.leaves(cand_vars):  # a menu of keep and skip only trains nothing
    ctx.write_json({"train_seconds": train_seconds}, *CANDIDATES_COST)
    _save_tree(ctx.path(*CANDIDATES), cand_vars)


def candidates_seconds(ctx: RunContext) -> float:
  """The training seconds saved with the candidates (0 for workdirs of older versions)."""
  return (ctx.read_json(*CANDIDATES_COST) or {}).get("train_seconds", 0.0)


def has_candidates(ctx: RunContext) -> bool:
  return os.path.exists(ctx.path(*CANDIDATES))


def load_candidates(ctx: RunContext) -> dict:
  """Every distilled candidate's variables, {"params"|"batch_stats": {block: {candidate: ...}}},
  restored as saved (no menu needs rebuilding to read them)."""
  path = ctx.shared_path(*CANDIDATES)
  return _restore_tree(path, f"delete {ctx.shared_path('distill')} to redo the distill phase")


def save_scores(ctx: RunContext, scores: dict) -> None:
  ctx.write_json(scores, *SCORES)


def load_scores(ctx: RunContext) -> dict:
  scores = _read_shared(ctx, SCORES)
  if scores is None:
    raise UserError(f"no {os.path.join(*SCORES)} in {ctx.shared_path()}: run the distill phase "
                    "first (add 'distill' to config.phases)")
  return scores


# --- selection: the plan and the chosen candidates -----------------------------------------------

def save_plan(ctx: RunContext, plan: dict, cand_vars: dict) -> None:
  """The plan, and the variables of the candidates it chose (what assembly restores)."""
  chosen = _chosen(plan, cand_vars)
  if jax.tree.leaves(chosen):
    _save_tree(ctx.path(*CHOSEN), chosen)
  ctx.write_json(plan, *PLAN)


def load_plan(ctx: RunContext) -> dict:
  plan = _read(ctx, PLAN)
  if plan is None:
    raise UserError(f"no {os.path.join(*PLAN)} in {ctx.workdir}: run the select phase first")
  return plan


def load_chosen(ctx: RunContext, plan: dict) -> dict:
  """The chosen candidates' variables (a workdir of an older version: picked from all of them)."""
  if os.path.exists(ctx.path(*CHOSEN)):
    return _restore_tree(ctx.path(*CHOSEN), f"delete {ctx.path('select')} to redo the selection")
  if not any(e["candidate"] not in ("keep", "skip") for e in plan["blocks"]):
    return {"params": {}, "batch_stats": {}}
  return _chosen(plan, load_candidates(ctx))


def _chosen(plan: dict, cand_vars: dict) -> dict:
  out = {"params": {}, "batch_stats": {}}
  for entry in plan["blocks"]:
    b, c = entry["block"], entry["candidate"]
    for col in out:
      tree = cand_vars.get(col, {}).get(b, {}).get(c)
      if tree:
        out[col].setdefault(b, {})[c] = tree
  return out


# --- the student ---------------------------------------------------------------------------------

def student_net(teacher_net: BlockNet, plan: dict) -> BlockNet:
  return teacher_net.with_blocks({e["block"]: LayerSpec.from_json(e["spec"])
                                  for e in plan["blocks"]})


def assemble(teacher_net: BlockNet, teacher_vars: dict, plan: dict, cand_vars: dict):
  """(student net, variables): stem, head and `keep` blocks from the teacher, every other block
  from its distilled candidate; parameter-free choices (skip) have no entry."""
  net = student_net(teacher_net, plan)
  variables = {"params": dict(teacher_vars["params"]),
               "batch_stats": dict(teacher_vars.get("batch_stats", {}))}
  for entry in plan["blocks"]:
    b, c = entry["block"], entry["candidate"]
    if c == "keep":
      continue
    for col in ("params", "batch_stats"):
      variables[col].pop(b, None)
      tree = cand_vars.get(col, {}).get(b, {}).get(c)
      if tree:
        variables[col][b] = tree
  # Shares the teacher's buffers: callers replicate (copy) before anything is donated.
  return net, variables


def initial_student(ctx: RunContext):
  """Teacher (net, vars), the assembled student (net, vars) and the plan it follows."""
  teacher_net, teacher_vars = load_teacher(ctx)
  plan = load_plan(ctx)
  net, variables = assemble(teacher_net, teacher_vars, plan, load_chosen(ctx, plan))
  return teacher_net, teacher_vars, net, variables, plan


# --- helpers -------------------------------------------------------------------------------------

def _read(ctx: RunContext, parts: tuple[str, ...]) -> dict | None:
  found = ctx.read_json(*parts)
  return found if found is not None else ctx.read_json(*_LEGACY[parts])


def _read_shared(ctx: RunContext, parts: tuple[str, ...]) -> dict | None:
  found = ctx.read_shared_json(*parts)
  return found if found is not None else ctx.read_shared_json(*_LEGACY[parts])


def _save_tree(path: str, tree: dict) -> None:
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, jax.device_get(tree), force=True)
    ckptr.wait_until_finished()


def _restore_tree(path: str, fix: str) -> dict:
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return ckptr.restore(path)
  except Exception as e:  # orbax raises many types for missing, truncated or mismatched files
    raise UserError(f"cannot restore {path} ({str(e).splitlines()[0][:160]}); {fix}") from None
