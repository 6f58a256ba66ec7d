"""Scoring (design stage 4): for every (block, candidate), on the validation split, the normalized
MSE against the teacher's block output and the hybrid accuracy (the teacher with only that block
swapped), plus its XLA FLOPs, MACs and parameters. The result is `scores.json`, what selection reads.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from compactkd_jax import cost, feed
from compactkd_jax.blockwise import DistillSetup
from compactkd_jax.models.net import LayerSpec


def candidate_variables(b: str, c: str, spec: LayerSpec, teacher_vars, cand_vars) -> dict:
  """Variables of candidate c of block b: the teacher's own for keep, none for parameter-free."""
  if c == "keep":
    return {k: v[b] for k, v in teacher_vars.items() if b in v}
  if b in cand_vars["params"] and c in cand_vars["params"][b]:
    return {k: v[b][c] for k, v in cand_vars.items()}
  return {}


@functools.partial(jax.jit, static_argnames=("setup", "block", "preprocess", "mesh"))
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
    y_c = spec.build().apply(block_vars[c], x_in)
    logits, _ = teacher.apply(teacher_vars, y_c, first=after)
    per_example_sse = jnp.sum((y_c - target) ** 2, axis=(1, 2, 3))
    out[c] = (jnp.sum(per_example_sse * mask), jnp.sum(jnp.sum(target ** 2, axis=(1, 2, 3)) * mask),
              jnp.sum((jnp.argmax(logits, -1) == y) * mask))
  return out


def score(setup: DistillSetup, teacher_vars, cand_vars, split: feed.DeviceSplit, preprocess, mesh,
          batch_size: int, image_shape) -> dict:
  """The scores.json dict: teacher costs, and per (block, candidate) nmse, accuracy and costs."""
  blocks = {}
  for b, menu in setup.all_menus:
    block_vars = {c: candidate_variables(b, c, s, teacher_vars, cand_vars) for c, s in menu}
    sums = {c: np.zeros(3) for c, _ in menu}
    for idx, mask in split.eval_batches(batch_size):
      res = _score_batch(teacher_vars, block_vars, feed.put_global(idx, feed.sharded(mesh)),
                         feed.put_global(mask, feed.sharded(mesh)), split.images, split.labels,
                         setup=setup, block=b, preprocess=preprocess, mesh=mesh)
      for c, vals in jax.device_get(res).items():
        sums[c] += np.asarray(vals, np.float64)
    blocks[b] = {c: {"spec": spec.to_json(), "nmse": float(sums[c][0] / max(sums[c][1], 1e-12)),
                     "hybrid_accuracy": float(sums[c][2] / split.size),
                     **cost.spec_costs(spec, setup.in_shape(b))}
                 for c, spec in menu}
  teacher_costs = cost.network_costs(setup.teacher, image_shape)
  parts = teacher_costs["parts"]
  # `keep` leaves the teacher unchanged: its hybrid accuracy is the teacher's on the same examples.
  teacher_accuracy = blocks[setup.teacher.block_names[0]]["keep"]["hybrid_accuracy"]
  return {"block_order": list(setup.teacher.block_names), "examples": split.size,
          "teacher": {"val_accuracy": teacher_accuracy,
                      "stem": parts[setup.teacher.stem.name], "head": parts[setup.teacher.head.name],
                      "blocks": {b: parts[b] for b in setup.teacher.block_names},
                      "total": teacher_costs["total"]},
          "blocks": blocks}
