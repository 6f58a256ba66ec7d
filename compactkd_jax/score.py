"""Scoring (design stage 4): for every (block, candidate), on the validation split, the normalized
MSE against the teacher's block output and the hybrid accuracy (the teacher with only that block
swapped), plus its XLA FLOPs, MACs and parameters. The result is `scores.json`, what selection reads.
`keep` is the teacher itself: its error is zero and its hybrid accuracy is the teacher's, so the
teacher is run once for all blocks instead of once per block (9 of the 43 suffix passes at the
quickstart's menu).
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


# Each block's program scores a few batches (one at the default 1,000 examples): compiled for that.
@compile_options.jit_run_once(static_argnames=("setup", "block", "preprocess", "mesh"))
def _score_batch(teacher_vars, block_vars, idx, mask, images, labels, *, setup: DistillSetup, block,
                 preprocess, mesh):
  """Per candidate of `block`: masked sums of squared error, of target squares, of correct."""
  teacher = setup.teacher
  x, y = feed.gather(images, labels, idx, mesh)
  _, feats = teacher.apply(teacher_vars, preprocess(x), last=block)
  x_in, target = feats[setup.prev(block)], feats[block]
  names = teacher.block_names
  after = names[names.index(block) + 1] if block != names[-1] else teacher.head.name
  out = {}
  for c, spec in dict(setup.all_menus)[block]:
    if c == "keep":
      continue
    y_c = spec.build().apply(block_vars[c], x_in)
    logits, _ = teacher.apply(teacher_vars, y_c, first=after)
    per_example_sse = jnp.sum((y_c - target) ** 2, axis=(1, 2, 3))
    out[c] = (jnp.sum(per_example_sse * mask), jnp.sum(jnp.sum(target ** 2, axis=(1, 2, 3)) * mask),
              jnp.sum((jnp.argmax(logits, -1) == y) * mask))
  return out


@compile_options.jit_run_once(static_argnames=("teacher", "preprocess", "mesh"))
def _teacher_correct(teacher_vars, idx, mask, images, labels, *, teacher, preprocess, mesh):
  x, y = feed.gather(images, labels, idx, mesh)
  logits, _ = teacher.apply(teacher_vars, preprocess(x))
  return jnp.sum((jnp.argmax(logits, -1) == y) * mask)


def teacher_accuracy(teacher, teacher_vars, split: feed.DeviceSplit, preprocess, mesh,
                     batch_size: int) -> float:
  """The teacher's accuracy on `split`: the hybrid accuracy of every block's `keep`."""
  correct = 0.0
  for idx, mask in split.eval_batches(batch_size):
    correct += float(_teacher_correct(teacher_vars, feed.put_global(idx, feed.sharded(mesh)),
                                      feed.put_global(mask, feed.sharded(mesh)), split.images,
                                      split.labels, teacher=teacher, preprocess=preprocess,
                                      mesh=mesh))
  return correct / split.size


def score(setup: DistillSetup, teacher_vars, cand_vars, split: feed.DeviceSplit, preprocess, mesh,
          batch_size: int, image_shape) -> dict:
  """The scores.json dict: teacher costs, and per (block, candidate) nmse, accuracy and costs."""
  teacher_acc = teacher_accuracy(setup.teacher, teacher_vars, split, preprocess, mesh, batch_size)
  blocks = {}
  for b, menu in setup.all_menus:
    block_vars = {c: candidate_variables(b, c, s, teacher_vars, cand_vars) for c, s in menu
                  if c != "keep"}
    sums = {c: np.zeros(3) for c, _ in menu if c != "keep"}
    for idx, mask in split.eval_batches(batch_size) if sums else ():
      res = _score_batch(teacher_vars, block_vars, feed.put_global(idx, feed.sharded(mesh)),
                         feed.put_global(mask, feed.sharded(mesh)), split.images, split.labels,
                         setup=setup, block=b, preprocess=preprocess, mesh=mesh)
      for c, vals in jax.device_get(res).items():
        sums[c] += np.asarray(vals, np.float64)
    blocks[b] = {c: {"spec": spec.to_json(), **_quality(sums.get(c), teacher_acc, split.size),
                     **cost.spec_costs(spec, setup.in_shape(b))}
                 for c, spec in menu}
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
