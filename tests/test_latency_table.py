"""Latency as a cost (compactkd_jax/deploy/latency_table.py): a real lookup table on LiteRT for a
small teacher's candidates; the table is cached (a second build measures nothing, a changed part
is measured again); a latency budget selects through the same knapsack, and the plan's predicted
latency is the table's sum for its choice."""
import json

import pytest

pytest.importorskip("ai_edge_litert")

import jax
import numpy as np

from compactkd_jax import cost, knapsack
from compactkd_jax.deploy import latency_table
from compactkd_jax.models import candidates, get_model

SHAPE = (28, 28, 1)
NAMES = ("keep", "slim_0.5", "skip")


def _scores(net):
  """scores.json's structure (specs and costs of each block's menu) for `net`."""
  ins, outs = cost.block_input_shapes(net, SHAPE), cost.feature_shapes(net, SHAPE)
  blocks, teacher_blocks = {}, {}
  for spec in net.blocks:
    menu = candidates.menu(spec, ins[spec.name], outs[spec.name], NAMES)
    blocks[spec.name] = {n: {"spec": s.to_json(), "macs": 1.0, "nmse": 0.1 * i,
                             "hybrid_accuracy": 0.9 - 0.01 * i}
                         for i, (n, s) in enumerate(sorted(menu.items()))}
    blocks[spec.name]["keep"].update(nmse=0.0, hybrid_accuracy=0.9)
    teacher_blocks[spec.name] = {"macs": 1.0}
  return {"block_order": list(net.block_names), "blocks": blocks,
          "teacher": {"val_accuracy": 0.9, "stem": {"macs": 0.0}, "head": {"macs": 0.0},
                      "blocks": teacher_blocks, "total": {"macs": len(blocks)}}}


@pytest.fixture(scope="module")
def small():
  net = get_model("resnet20", 10, width=0.25)
  variables = latency_table._random_variables(net, SHAPE)
  return net, variables, _scores(net)


def test_real_table_on_litert(small, tmp_path):
  net, variables, scores = small
  path = latency_table.cache_path(str(tmp_path), "litert", 1)
  table = latency_table.build(net, variables, scores, SHAPE, "litert", 1, path)
  assert table["call"] > 0 and table["stem"] >= 0 and table["head"] >= 0
  for block, menu in table["blocks"].items():
    assert set(menu) == set(scores["blocks"][block])
    assert all(np.isfinite(v) and v >= 0 for v in menu.values())
  # A whole stage of kept blocks costs more than the same stage skipped (call cost subtracted).
  keep = sum(m["keep"] for m in table["blocks"].values())
  skip = sum(m.get("skip", m["keep"]) for m in table["blocks"].values())
  assert keep > skip
  annotated = latency_table.annotate(scores, table)
  plan = knapsack.make_plan(annotated, "latency", 0.6, relative=True, damage="mse")
  assert plan["cost"] == pytest.approx(latency_table.predict(table, plan["choice"]), rel=1e-9)
  assert plan["cost"] <= 0.6 * annotated["teacher"]["total"]["latency"] * (1 + 1e-9)
  assert annotated["teacher"]["total"]["latency"] == pytest.approx(
      latency_table.predict(table, {b: "keep" for b in scores["block_order"]}))


def test_table_is_cached_by_part(small, tmp_path, monkeypatch):
  net, variables, scores = small
  timed = []
  monkeypatch.setattr(latency_table, "_time",
                      lambda fn, shape, runtime, threads: timed.append(shape) or 1.0 + len(timed))
  path = latency_table.cache_path(str(tmp_path), "litert", 1)
  first = latency_table.build(net, variables, scores, SHAPE, "litert", 1, path)
  assert len(timed) > 2 * len(scores["block_order"])  # every part and its call model
  timed.clear()
  again = latency_table.build(net, variables, scores, SHAPE, "litert", 1, path)
  assert again == first and not timed  # everything from the cache
  block = scores["block_order"][0]
  scores["blocks"][block]["slim_0.5"]["spec"]["options"]["width_ratio"] = 0.4  # a changed part
  latency_table.build(net, variables, scores, SHAPE, "litert", 1, path)
  assert len(timed) == 1  # only that part (its shape's call model is cached)


def test_latency_budget_below_the_fastest_plan_is_one_line(small, tmp_path, monkeypatch):
  net, variables, scores = small
  monkeypatch.setattr(latency_table, "_time", lambda fn, shape, runtime, threads: 0.01)
  table = latency_table.build(net, variables, scores, SHAPE, "litert", 1,
                              latency_table.cache_path(str(tmp_path), "litert", 1))
  with pytest.raises(knapsack.InfeasibleBudget, match="smallest reachable cost") as e:
    knapsack.make_plan(latency_table.annotate(scores, table), "latency", 0.001, relative=False)
  assert "\n" not in str(e.value) and "latency" in str(e.value)


def test_checked_plan_tightens_until_the_measured_student_fits(small, tmp_path, monkeypatch):
  """A runtime that runs whole networks 10% slower than the table's sum: the first plan, at the
  limit by the table, measures over it; the limit is tightened and the plan solved again until
  the measured student fits, and every attempt is recorded."""
  import types

  import ml_collections

  from compactkd_jax.phases import select as select_phase

  net, variables, scores = small
  monkeypatch.setattr(latency_table, "_time", lambda fn, shape, runtime, threads, dtype="": 0.01)
  table = latency_table.build(net, variables, scores, SHAPE, "litert", 1,
                              latency_table.cache_path(str(tmp_path), "litert", 1))
  for block, menu in table["blocks"].items():  # distinct part latencies, so plans differ
    for i, name in enumerate(sorted(menu)):
      menu[name] = 0.0 if name == "skip" else 0.01 * (1 + i) * (1 + len(block) % 3)
  annotated = latency_table.annotate(scores, table)
  spec_of = {json.dumps(e["spec"], sort_keys=True): (b, c)
             for b, menu in scores["blocks"].items() for c, e in menu.items()}

  def measure(student_net, preprocess, shape, runtime, threads):
    choice = dict(spec_of[json.dumps(b.to_json(), sort_keys=True)] for b in student_net.blocks)
    return 1.1 * latency_table.predict(table, choice)
  monkeypatch.setattr(latency_table, "measure_network", measure)
  monkeypatch.setattr(select_phase.workdir, "load_teacher", lambda ctx: (net, variables))
  cfg = ml_collections.ConfigDict({
      "select": dict(metric="latency", budget=0.6, relative=True, damage="mse", solver="dp",
                     uniform="", runtime="litert",
                     constraints=dict(flops=0.0, macs=0.0, params=0.0, latency=0.0)),
      "report": dict(threads=1)})
  ctx = types.SimpleNamespace(cfg=cfg, preprocess=None,
                              dataset=types.SimpleNamespace(image_shape=SHAPE))
  plan = select_phase.checked_plan(ctx, annotated, 0.6)
  check = plan["latency_check"]
  limit = 0.6 * annotated["teacher"]["total"]["latency"]
  assert check["limit_ms"] == pytest.approx(limit)
  assert check["met"] and check["measured_ms"] <= limit
  assert len(check["attempts"]) >= 2 and check["attempts"][0]["measured_ms"] > limit
  assert check["attempts"][-1]["scale"] < 1.0
