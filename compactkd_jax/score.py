"""Scoring (design stage 4): for every (block, candidate), on the validation split, the normalized
MSE against the teacher's block output and the hybrid accuracy (the teacher with only that block
swapped), plus its XLA FLOPs, MACs and parameters. The result is `scores.json`, what selection reads.
`keep` is the teacher itself: its error is zero and its hybrid accuracy is the teacher's, so the
teacher is run once for all blocks instead of once per block (9 of the 43 suffix passes at the
quickstart's menu).

Per batch the teacher runs once and hands every block its input and output; each block's program
then runs its candidates and the teacher's suffix over them with `lax.map`, so the suffix is
compiled once per block, not once per candidate, and no block re-runs the teacher's prefix. The
price is memory: one batch's features of every block stay on the device (ResNet-56 w0.25 at the
default 1,000 examples: about 0.2 GB by count, 52.5K floats per image; a smaller
`data.eval_batch_size` lowers it).
On the ResNet-56 w0.25 sweep's workdir (27 blocks, 4 candidates each, 1,000 examples), one core
shared with another job, the old layout (each block's program: the prefix, then the suffix once per
candidate) took 605 s, 325 s of it running and the rest compiling; this one takes 264 s, 159 s
running, and gives the same scores.json.
"""

import jax
import jax.numpy as jnp
import numpy as np

from compactkd_jax import compile_options, cost, feed
from compactkd_jax.blockwise import DistillSetup
from compactkd_jax.models.net import LayerSpec


def candidate_variables(b: str, c: str, spec: LayerSpec, teacher_vars, cand_vars) -> dict:
  """Variables of candidate c of block b: the teacher's own for keep, none for parameter-free."""
  if c == "keep":
    return {k: v[b] for k, v in teacher_vars.items() if b in v}
  if b in cand_vars["params"] and c in cand_vars["params"][b]:
    return {k: v[b][c] for k, v in cand_vars.items()}
  return {}


@compile_options.jit_run_once(static_argnames=("teacher", "preprocess", "mesh"))
def _teacher_pass(teacher_vars, idx, mask, images, labels, *, teacher, preprocess, mesh):
  """One batch through the teacher: every block's input and output, the labels, and the masked
  count of correct predictions."""
  x, y = feed.gather(images, labels, idx, mesh)
  logits, feats = teacher.apply(teacher_vars, preprocess(x))
  return feats, y, jnp.sum((jnp.argmax(logits, -1) == y) * mask)


# Each block's program scores a few batches (one at the default 1,000 examples): compiled for that.
@compile_options.jit_run_once(static_argnames=("setup", "block"))
def _score_block(teacher_vars, block_vars, x_in, target, y, mask, *, setup: DistillSetup, block):
  """Per candidate of `block`: masked sums of squared error, of target squares, of correct."""
  teacher = setup.teacher
  names = teacher.block_names
  after = names[names.index(block) + 1] if block != names[-1] else teacher.head.name
  cands = [(c, spec) for c, spec in dict(setup.all_menus)[block] if c != "keep"]
  outs = jnp.stack([spec.build().apply(block_vars[c], x_in) for c, spec in cands])
  logits = jax.lax.map(lambda y_c: teacher.apply(teacher_vars, y_c, first=after)[0], outs)
  m = mask.astype(jnp.float32)
  sse = jnp.sum(jnp.sum((outs - target[None]) ** 2, axis=(2, 3, 4)) * m, axis=1)
  target_sq = jnp.sum(jnp.sum(target ** 2, axis=(1, 2, 3)) * m)
  correct = jnp.sum((jnp.argmax(logits, -1) == y[None]) * m, axis=1)
  return {c: (sse[i], target_sq, correct[i]) for i, (c, _) in enumerate(cands)}


def score(setup: DistillSetup, teacher_vars, cand_vars, split: feed.DeviceSplit, preprocess, mesh,
          batch_size: int, image_shape) -> dict:
  """The scores.json dict: teacher costs, and per (block, candidate) nmse, accuracy and costs."""
  block_vars = {b: {c: candidate_variables(b, c, s, teacher_vars, cand_vars) for c, s in menu
                    if c != "keep"} for b, menu in setup.all_menus}
  sums = {b: {c: np.zeros(3) for c in bv} for b, bv in block_vars.items()}
  teacher_correct = 0.0
  for idx, mask in split.eval_batches(batch_size):
    mask = feed.put_global(mask, feed.sharded(mesh))
    feats, y, correct = _teacher_pass(teacher_vars, feed.put_global(idx, feed.sharded(mesh)), mask,
                                      split.images, split.labels, teacher=setup.teacher,
                                      preprocess=preprocess, mesh=mesh)
    teacher_correct += float(correct)
    for b, bv in block_vars.items():
      if not bv:
        continue
      res = _score_block(teacher_vars, bv, feats[setup.prev(b)], feats[b], y, mask, setup=setup,
                         block=b)
      for c, vals in jax.device_get(res).items():
        sums[b][c] += np.asarray(vals, np.float64)
  teacher_acc = teacher_correct / split.size
  blocks = {b: {c: {"spec": spec.to_json(), **_quality(sums[b].get(c), teacher_acc, split.size),
                    **cost.spec_costs(spec, setup.in_shape(b))}
                for c, spec in menu}
            for b, menu in setup.all_menus}
  teacher_costs = cost.network_costs(setup.teacher, image_shape)
  parts = teacher_costs["parts"]
  return {"block_order": list(setup.teacher.block_names), "examples": split.size,
          "teacher": {"val_accuracy": teacher_acc,
                      "stem": parts[setup.teacher.stem.name], "head": parts[setup.teacher.head.name],
                      "blocks": {b: parts[b] for b in setup.teacher.block_names},
                      "total": teacher_costs["total"]},
          "blocks": blocks}


def _quality(sums, teacher_acc: float, size: int) -> dict:
  """nmse and hybrid accuracy from a candidate's sums; `keep` (no sums) is the teacher itself."""
  if sums is None:
    return {"nmse": 0.0, "hybrid_accuracy": teacher_acc}
  return {"nmse": float(sums[0] / max(sums[1], 1e-12)), "hybrid_accuracy": float(sums[2] / size)}
