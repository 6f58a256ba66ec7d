"""Tests for block-wise distillation: candidate menus, the parallel and sequential steps, scoring.

What they prove (docs/design.md, stages 2-4):
- every candidate keeps the in/out shapes of every block of every zoo teacher (abstract evaluation
  only, so the whole zoo costs seconds), and the menu rules (skip, ir_t, unknown names, user-added
  candidates) hold;
- distillation never touches the teacher, trains every candidate, and lowers every candidate's
  validation normalized MSE on real Fashion-MNIST;
- the parallel and sequential schedules give the same parameters;
- candidate costs add up to the cost of the assembled network;
- the parallel step compiles once;
- the distill phase writes a complete, finite `scores.json` and is skipped when re-run.

All training here uses a narrow ResNet-20 (width 0.25) on a small real subset, a restricted
candidate menu (depthwise convolutions train slowly on XLA:CPU) and a few steps.
"""
import dataclasses
import json
import math
import os

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from compactkd_jax import artifacts, config as config_lib, cost, data, feed, pipeline, train
from compactkd_jax import blockwise as distill, seeds
from compactkd_jax.context import RunContext
from compactkd_jax.errors import UserError
from compactkd_jax.losses import hinton_kd, normalized_mse
from compactkd_jax.models import candidates, get_model, layers, net as net_lib, zoo

SHAPES = [(32, 32, 3), (28, 28, 1)]
SHAPE_IDS = ["32x32x3", "28x28x1"]

# Every zoo teacher with default options, plus the non-default ResNet shortcut and VGG classifier.
TEACHERS = ([(name, {}) for name in zoo.MODELS] +
            [(f"resnet{d}", {"shortcut": "B"}) for d in (20, 32, 44, 56, 110)] +
            [(f"vgg{d}", {"classifier": "zoo"}) for d in (11, 13, 16, 19)])
TEACHER_IDS = [name + "".join(f"-{k}={v}" for k, v in o.items()) for name, o in TEACHERS]

# Candidates that train fast on XLA:CPU (no expanded depthwise convs): every kind, few of each.
FAST_CANDIDATES = ("keep", "slim_0.5", "slim_0.25", "ir_1", "dwsep", "skip")
# Blocks of the narrow ResNet-20 trained below: first block, a downsampling one, the last one.
TRAINED_BLOCKS = ("stage1_block0", "stage2_block0", "stage3_block2")

# A small real subset, shared by the pipeline run and the schedule tests (same teacher, same data).
TRAIN_LIMIT, VALIDATION_SIZE, TEST_LIMIT = 2500, 500, 200
TEACHER_STEPS, TEACHER_BATCH = 60, 64
DISTILL_STEPS, DISTILL_BATCH, DISTILL_LR = 30, 32, 0.2


def _have_fmnist() -> bool:
  return all(os.path.exists(os.path.join(data.DEFAULT_IDX_DIR, stem)) or
             os.path.exists(os.path.join(data.DEFAULT_IDX_DIR, stem + ".gz"))
             for stems in data.IDX_FILES.values() for stem in stems)


requires_fmnist = pytest.mark.skipif(not _have_fmnist(), reason=(
    f"Fashion-MNIST IDX files not found in {data.DEFAULT_IDX_DIR} (install dataset-fashion-mnist)"))


def _numpy_tree(tree):
  """A host copy that survives donation of the original buffers."""
  return jax.tree.map(lambda a: np.array(a, copy=True), tree)


# ---------------------------------------------------------------------------------------------
# 1. Menus: shapes, rules, registry.
# ---------------------------------------------------------------------------------------------

_SHAPE_CACHE: dict = {}


def _abstract_out_shape(spec: net_lib.LayerSpec, in_shape) -> tuple[tuple[int, ...], int]:
  """(output shape, number of parameter leaves) of a spec under eval_shape (no compute).
  Cached on the spec's content and input shape: the block name does not change shapes."""
  key = (spec.kind, spec.options, tuple(in_shape))
  if key not in _SHAPE_CACHE:
    module = spec.build()
    x = jax.ShapeDtypeStruct((2, *in_shape), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    out = jax.eval_shape(module.apply, variables, x)
    _SHAPE_CACHE[key] = (tuple(out.shape[1:]), len(jax.tree.leaves(variables.get("params", {}))))
    assert out.shape[0] == 2
  return _SHAPE_CACHE[key]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name,options", TEACHERS, ids=TEACHER_IDS)
def test_every_candidate_keeps_block_shapes(name, options, shape):
  teacher = get_model(name, 10, **options)
  ins = cost.block_input_shapes(teacher, shape)  # one abstract pass of the whole teacher
  # Block outputs: each block's output is the next one's input, the last one's the head's.
  following = [*teacher.block_names[1:], teacher.head.name]
  outs = {b: ins[nxt] for b, nxt in zip(teacher.block_names, following)}
  every = list(candidates.CANDIDATES)
  offered = set()
  for block in teacher.blocks:
    b = block.name
    menu = distill.menu(block, ins[b], outs[b], every)
    assert menu["keep"] == block
    assert _abstract_out_shape(block, ins[b])[0] == outs[b]
    # Every builder's output keeps the shapes, whether or not the menu keeps it (dominated ones).
    built = {c: candidates.CANDIDATES[c](block, ins[b], outs[b]) for c in every}
    for c, spec in {**{c: s for c, s in built.items() if s is not None}, **menu}.items():
      assert spec.name == b, f"{b}/{c} must keep the block's name to be spliced in"
      out_shape, n_params = _abstract_out_shape(spec, ins[b])
      assert out_shape == outs[b], f"{name} {b}/{c}: {ins[b]} -> {out_shape}, expected {outs[b]}"
      assert (n_params == 0) == (c == "skip"), f"{b}/{c} has {n_params} parameter arrays"
    for c, spec in menu.items():
      offered.add(c)
      if c != "keep":
        assert spec != block
        assert not _dominated(spec, block, ins[b]), f"{b}/{c} saves neither MACs nor params"
    _check_menu_rules(name, block, ins[b], outs[b], menu)
  # The menu is exercised on every teacher family (skip only where shapes are kept).
  assert {"keep", "slim_0.25", "slim_0.5", "ir_1"} <= offered
  assert ("dwsep" in offered) == (name != "mobilenet_v2")
  assert ("skip" in offered) == (not name.startswith("vgg"))
  assert ("inner_0.5" in offered) == name.startswith("resnet")


def _dominated(spec, block, in_shape):
  macs, params = _macs_and_params(spec, tuple(in_shape))
  keep_macs, keep_params = _macs_and_params(block, tuple(in_shape))
  return macs >= keep_macs and params >= keep_params


def _offered_unless_dominated(menu, c, block, in_shape, out_shape, applies: bool):
  """c is in the menu exactly when its rule applies and it saves MACs or parameters."""
  spec = candidates.CANDIDATES[c](block, in_shape, out_shape)
  expected = applies and spec is not None and not _dominated(spec, block, in_shape)
  return (c in menu) == expected


def _check_menu_rules(name, block, in_shape, out_shape, menu):
  b, opts = block.name, dict(block.options)
  residual = block.kind in candidates.RESIDUAL_KINDS
  assert ("skip" in menu) == (residual and in_shape == out_shape), f"{name} {b}: skip rule"
  if "skip" in menu:
    assert menu["skip"].kind == "identity"
  for t in (1, 2, 3, 6):
    applies = t < opts["expansion"] if block.kind == "inverted_residual" else True
    assert _offered_unless_dominated(menu, f"ir_{t}", block, in_shape, out_shape, applies), \
        f"{name} {b}: ir_{t} rule"
    if f"ir_{t}" in menu:
      assert dict(menu[f"ir_{t}"].options)["expansion"] == t
  # dwsep needs a k x k conv with k > 1; inverted residuals are already depthwise.
  has_kxk = block.kind == "basic" or (block.kind == "conv" and opts.get("kernel", 3) > 1)
  assert _offered_unless_dominated(menu, "dwsep", block, in_shape, out_shape, has_kxk)
  for r in candidates.SLIM_RATIOS:
    assert _offered_unless_dominated(menu, f"slim_{r}", block, in_shape, out_shape, True)
    if f"slim_{r}" in menu:
      assert dict(menu[f"slim_{r}"].options)["width_ratio"] == r
  for r in candidates.INNER_RATIOS:
    # inner narrows only between a basic block's two convs (what pruning removes).
    assert _offered_unless_dominated(menu, f"inner_{r}", block, in_shape, out_shape,
                                     block.kind == "basic")
    if f"inner_{r}" in menu:
      assert dict(menu[f"inner_{r}"].options)["inner_ratio"] == r


def test_mobilenet_expansion_one_block_gets_no_inverted_residual():
  teacher = get_model("mobilenet_v2", 10)
  ins = cost.block_input_shapes(teacher, (32, 32, 3))
  outs = cost.feature_shapes(teacher, (32, 32, 3))
  first = teacher.blocks[0]
  assert dict(first.options)["expansion"] == 1
  menu = distill.menu(first, ins[first.name], outs[first.name], list(candidates.CANDIDATES))
  assert not any(c.startswith("ir_") for c in menu)


def test_slim_last_conv_is_low_rank_and_reaches_the_papers_mobilenet_point():
  """MobileNetV2's last conv (1 x 1, 320 -> 1280, 18% of the parameters) slims to a rank-r
  factorization, 320 -> r * 320 -> 1280 (hand-counted parameters, BN included). With it the full
  menu reaches the paper's headline budget, 1/5.2 of the teacher's parameters, on CIFAR shapes;
  without a compact candidate for that conv the smallest plan would keep 22.7% of them."""
  teacher = get_model("mobilenet_v2", 10)
  ins = cost.block_input_shapes(teacher, (32, 32, 3))
  outs = cost.feature_shapes(teacher, (32, 32, 3))
  last = teacher.blocks[-1]
  menu = distill.menu(last, ins[last.name], outs[last.name], ["slim_0.25", "slim_0.5"])
  for r, rank in ((0.25, 80), (0.5, 160)):
    params = cost.spec_costs(menu[f"slim_{r}"], ins[last.name])["params"]
    assert params == 320 * rank + 2 * rank + rank * 1280 + 2 * 1280
  names = list(candidates.CANDIDATES)
  smallest = sum(cost.spec_costs(part, shape)["params"] for part, shape in
                 ((teacher.stem, (32, 32, 3)), (teacher.head, ins[teacher.head.name])))
  for b in teacher.blocks:
    smallest += min(cost.spec_costs(c, ins[b.name])["params"]
                    for c in distill.menu(b, ins[b.name], outs[b.name], names).values())
  variables = jax.eval_shape(teacher.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert smallest < cost.count_params(variables) / 5.2


def test_restricted_menu_always_keeps_the_teacher_block():
  teacher = get_model("resnet20", 10)
  block = teacher.blocks[3]  # downsampling: skip does not apply
  ins = cost.block_input_shapes(teacher, (28, 28, 1))
  outs = cost.feature_shapes(teacher, (28, 28, 1))
  menu = distill.menu(block, ins[block.name], outs[block.name], ["skip", "slim_0.5"])
  assert set(menu) == {"keep", "slim_0.5"}
  assert set(distill.menu(block, ins[block.name], outs[block.name], [])) == {"keep"}


def test_unknown_candidate_is_user_error_listing_valid_names():
  teacher = get_model("resnet20", 10)
  block = teacher.blocks[0]
  with pytest.raises(UserError) as e:
    distill.menu(block, (28, 28, 16), (28, 28, 16), ["keep", "slim_0.33", "bogus"])
  message = str(e.value)
  assert "slim_0.33" in message and "bogus" in message
  for name in candidates.CANDIDATES:
    assert name in message
  # The same error surfaces through the distillation plan, and config validation catches it first.
  with pytest.raises(UserError, match="valid candidates"):
    distill.distill_setup(get_model("resnet20", 10, width=0.25), (28, 28, 1), ("keep", "bogus"))
  cfg = config_lib.default_config()
  cfg.distill.candidates = ("keep", "bogus")
  with pytest.raises(UserError, match="bogus") as e:
    config_lib.validate(cfg)
  assert all(name in str(e.value) for name in candidates.CANDIDATES)


_MACS_CACHE: dict = {}


def _macs_and_params(spec, in_shape):
  """Paper-convention MACs (jaxpr, no XLA lowering) and parameters of one spec. Cached like
  _abstract_out_shape: a stage's blocks differ only in their names (ResNet-110: 54 blocks, 5
  distinct), and the menu rules ask for each several times."""
  key = (spec.kind, spec.options, tuple(in_shape))
  if key not in _MACS_CACHE:
    module = spec.build()
    x = jax.ShapeDtypeStruct((1, *in_shape), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    _MACS_CACHE[key] = (cost.jaxpr_macs(module.apply, variables, x), cost.count_params(variables))
  return _MACS_CACHE[key]


@pytest.mark.parametrize("name", [
    "resnet20",
    "vgg16",
    "mobilenet_v2",
])
def test_no_candidate_costs_more_than_its_teacher_block(name):
  """A compact replacement must save something: MACs or parameters (else keep dominates it)."""
  teacher = get_model(name, 10)
  ins = cost.block_input_shapes(teacher, (32, 32, 3))
  following = [*teacher.block_names[1:], teacher.head.name]
  dominated, seen = [], set()
  for block, nxt in zip(teacher.blocks, following):
    key = (block.kind, block.options, ins[block.name])
    if key in seen:
      continue
    seen.add(key)
    menu = distill.menu(block, ins[block.name], ins[nxt], list(candidates.CANDIDATES))
    keep_macs, keep_params = _macs_and_params(block, ins[block.name])
    for c, spec in menu.items():
      if c == "keep":
        continue
      macs, params = _macs_and_params(spec, ins[block.name])
      if macs >= keep_macs and params >= keep_params:
        dominated.append(f"{block.name}/{c} ({macs} >= {keep_macs} MACs, "
                         f"{params} >= {keep_params} params)")
  assert not dominated, dominated


class _TinyConvCandidate(nn.Module):
  """A user's own candidate: one 3 x 3 conv (strided where the block downsamples), BN, ReLU."""
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.conv(self.features, 3, self.stride, name="conv")(x)
    return nn.relu(layers.batch_norm(train, name="bn")(x))


def _tiny_builder(spec, in_shape, out_shape):
  if spec.kind != "basic":
    return None
  stride = 1 if in_shape[:2] == out_shape[:2] else 2
  return net_lib.LayerSpec.make("test_tiny_conv", spec.name, features=out_shape[-1], stride=stride)


@pytest.fixture
def tiny_candidate_registered():
  net_lib.register_layer("test_tiny_conv", _TinyConvCandidate)
  candidates.register_candidate("test_tiny", _tiny_builder)
  try:
    yield "test_tiny"
  finally:
    candidates.CANDIDATES.pop("test_tiny", None)
    net_lib.LAYERS.pop("test_tiny_conv", None)


# ---------------------------------------------------------------------------------------------
# Shared run: a briefly trained narrow teacher on real data (the pipeline's teacher phase) and a
# RunContext over the same data for the schedule tests.
# ---------------------------------------------------------------------------------------------


def _tiny_config():
  cfg = config_lib.default_config()
  cfg.phases = ("teacher", "distill")
  cfg.data.train_limit = TRAIN_LIMIT
  cfg.data.validation_size = VALIDATION_SIZE
  cfg.data.test_limit = TEST_LIMIT
  cfg.data.eval_batch_size = 250
  cfg.data.crop_padding = 0
  cfg.data.flip = False
  cfg.teacher.model = "resnet20"
  cfg.teacher.options.width = 0.25
  t = cfg.teacher.train
  t.steps, t.batch_size, t.learning_rate = TEACHER_STEPS, TEACHER_BATCH, 0.05
  t.log_every_steps = t.checkpoint_every_steps = TEACHER_STEPS
  d = cfg.distill.train
  d.steps, d.batch_size, d.learning_rate = 4, DISTILL_BATCH, DISTILL_LR
  d.log_every_steps = d.checkpoint_every_steps = 4
  cfg.distill.candidates = ("keep", "slim_0.5", "skip")
  return cfg


def _mtimes(workdir):
  return {p: os.stat(os.path.join(workdir, p)).st_mtime_ns
          for p in ("distill/scores.json", "teacher/result.json", "distill/result.json", "teacher/model.json",
                    "config.json")}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
  """pipeline.run with phases (teacher, distill), then the same command again."""
  if not _have_fmnist():
    pytest.skip(f"Fashion-MNIST IDX files not found in {data.DEFAULT_IDX_DIR}")
  cfg = _tiny_config()
  workdir = str(tmp_path_factory.mktemp("pipeline"))
  first = pipeline.run(cfg, workdir)
  mtimes = _mtimes(workdir)
  second = pipeline.run(cfg, workdir)
  return {"cfg": cfg, "workdir": workdir, "first": first, "second": second, "mtimes": mtimes}


@pytest.fixture(scope="module")
def teacher_and_ctx(pipeline_run, tmp_path_factory):
  """The pipeline's trained teacher and a RunContext (no writer) over the same real data."""
  cfg = pipeline_run["cfg"]
  teacher_net, teacher_vars, _ = artifacts.load_model(os.path.join(pipeline_run["workdir"],
                                                                   "teacher"))
  dataset = data.load_dataset(cfg.data)
  mesh = feed.make_mesh()
  ctx = RunContext(cfg, str(tmp_path_factory.mktemp("ctx")), dataset, mesh,
                   feed.Preprocess.from_split(dataset.train, 0, False),
                   {s: feed.DeviceSplit.create(getattr(dataset, s), mesh)
                    for s in ("train", "validation", "test")})
  return teacher_net, jax.device_put(teacher_vars, feed.replicated(mesh)), ctx


def _trained_plan(teacher_net, image_shape) -> distill.DistillSetup:
  plan = distill.distill_setup(teacher_net, image_shape, FAST_CANDIDATES)
  return dataclasses.replace(plan, menus=tuple(m for m in plan.menus if m[0] in TRAINED_BLOCKS))


def _distill_tcfg(steps):
  t = config_lib.train_defaults(epochs=1, learning_rate=DISTILL_LR, batch_size=DISTILL_BATCH,
                                weight_decay=0.0)
  t.steps = steps
  t.log_every_steps = t.checkpoint_every_steps = steps
  return t


@pytest.fixture(scope="module")
def schedules(teacher_and_ctx, tmp_path_factory):
  """Both schedules from the same seed, each in its own workdir, plus the teacher before/after."""
  teacher_net, teacher_vars, ctx = teacher_and_ctx
  plan = _trained_plan(teacher_net, ctx.dataset.image_shape)
  tcfg = _distill_tcfg(DISTILL_STEPS)
  teacher_before = _numpy_tree(teacher_vars)
  # The weights run_schedule starts from (its named stream).
  init = _numpy_tree(distill.init_candidates(plan, seeds.of(ctx.cfg.seed, seeds.DISTILL_INIT)))
  out = {}
  for schedule in ("parallel", "sequential"):
    run_ctx = dataclasses.replace(ctx, workdir=str(tmp_path_factory.mktemp(schedule)))
    out[schedule] = _numpy_tree(distill.run_schedule(run_ctx, plan, teacher_vars, tcfg, schedule))
    out[schedule + "_workdir"] = run_ctx.workdir
  return {"plan": plan, "init": init, "teacher_before": teacher_before,
          "teacher_after": _numpy_tree(teacher_vars), "teacher_vars": teacher_vars, **out}


# ---------------------------------------------------------------------------------------------
# 2. Distillation trains the candidates and nothing else.
# ---------------------------------------------------------------------------------------------


@requires_fmnist
def test_plan_covers_every_trainable_candidate(schedules):
  plan = schedules["plan"]
  assert [b for b, _ in plan.menus] == list(TRAINED_BLOCKS)
  for b, cands in plan.menus:
    names = {c for c, _ in cands}
    assert "keep" not in names and "skip" not in names  # the teacher's and parameter-free
    assert names == {"slim_0.5", "slim_0.25", "ir_1", "dwsep"}
  full = dict(plan.all_menus)
  assert set(full) == set(plan.teacher.block_names)
  assert all(any(c == "keep" for c, _ in m) for m in full.values())


@requires_fmnist
def test_teacher_is_bit_identical_after_distillation(schedules):
  before, after = schedules["teacher_before"], schedules["teacher_after"]
  assert jax.tree.structure(before) == jax.tree.structure(after)
  for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(x, y)
  # Not donated: the teacher's device buffers are still alive and usable.
  assert not any(a.is_deleted() for a in jax.tree.leaves(schedules["teacher_vars"]))


@requires_fmnist
@pytest.mark.parametrize("schedule", ["parallel", "sequential"])
def test_every_candidate_changed(schedules, schedule):
  init, trained = schedules["init"], schedules[schedule]
  assert jax.tree.structure(init) == jax.tree.structure(trained)
  for b, cands in schedules["plan"].menus:
    for c, _ in cands:
      pairs = zip(jax.tree.leaves(init["params"][b][c]), jax.tree.leaves(trained["params"][b][c]))
      changed = [not np.array_equal(x, y) for x, y in pairs]
      assert all(changed), f"{b}/{c}: {changed.count(False)} parameter arrays did not change"
      assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(trained["params"][b][c]))


@requires_fmnist
def test_validation_nmse_falls_for_every_candidate(schedules, teacher_and_ctx):
  _, teacher_vars, ctx = teacher_and_ctx
  plan = schedules["plan"]
  val = ctx.splits["validation"]

  @jax.jit
  def val_losses(cand_vars, images):
    feats = distill.teacher_features(plan.teacher, teacher_vars, ctx.preprocess(images))
    losses, _ = distill.candidate_losses(cand_vars["params"], cand_vars["batch_stats"], feats,
                                         plan, train_mode=False)
    return losses

  before = jax.device_get(val_losses(schedules["init"], val.images))
  after = jax.device_get(val_losses(schedules["parallel"], val.images))
  ratios = {k: float(after[k] / before[k]) for k in before}
  assert len(ratios) == 4 * len(TRAINED_BLOCKS)
  # 30 steps are few: most candidates fall to 0.5-0.6x, stage1_block0's slim_0.5 only to 0.76x
  # here (0.71x after 50 steps; the machine's conv numerics decide which side of 0.7 it lands).
  # An untrained candidate stays at 1.0x.
  bad = {k: r for k, r in ratios.items() if not r < 0.85}
  assert not bad, f"validation nmse did not fall below 0.85x its initial value: {bad}"
  assert all(np.isfinite(v) for v in after.values())


# ---------------------------------------------------------------------------------------------
# 3. Parallel == sequential.
# ---------------------------------------------------------------------------------------------


@requires_fmnist
def test_parallel_and_sequential_schedules_agree(schedules):
  par, seq = schedules["parallel"], schedules["sequential"]
  assert jax.tree.structure(par) == jax.tree.structure(seq)
  flat_par = jax.tree_util.tree_leaves_with_path(par)
  for (path, x), y in zip(flat_par, jax.tree.leaves(seq)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))
  # Each schedule wrote its own checkpoints: one loop for parallel, one per block for sequential.
  ckpts = lambda s: sorted(os.listdir(os.path.join(schedules[s + "_workdir"], "checkpoints")))
  assert ckpts("parallel") == ["distill"]
  assert ckpts("sequential") == sorted(f"distill_{b}" for b in TRAINED_BLOCKS)


# ---------------------------------------------------------------------------------------------
# User-registered candidate: appears in the menu, keeps shapes, trains.
# ---------------------------------------------------------------------------------------------


@requires_fmnist
def test_registered_candidate_appears_and_trains(tiny_candidate_registered, teacher_and_ctx):
  teacher_net, teacher_vars, ctx = teacher_and_ctx
  name = tiny_candidate_registered
  shape = ctx.dataset.image_shape
  ins, outs = cost.block_input_shapes(teacher_net, shape), cost.feature_shapes(teacher_net, shape)
  for block in teacher_net.blocks:
    menu = distill.menu(block, ins[block.name], outs[block.name], ("keep", name))
    assert set(menu) == {"keep", name}
    assert menu[name].kind == "test_tiny_conv"
    assert _abstract_out_shape(menu[name], ins[block.name])[0] == outs[block.name]
  # Its spec round-trips through JSON like any other (how an exported student is rebuilt).
  spec = distill.menu(teacher_net.blocks[3], ins[teacher_net.blocks[3].name],
                         outs[teacher_net.blocks[3].name], (name,))[name]
  assert net_lib.LayerSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec

  plan = distill.distill_setup(teacher_net, shape, ("keep", name))
  block = "stage1_block1"
  plan = dataclasses.replace(plan, menus=tuple(m for m in plan.menus if m[0] == block))
  variables = distill.init_candidates(plan, 0)
  init = _numpy_tree(variables)
  steps = 20
  tcfg = _distill_tcfg(steps)
  tcfg.learning_rate = 0.1
  state = jax.device_put(train.create_state(variables, tcfg, steps), feed.replicated(ctx.mesh))
  tr = ctx.splits["train"]
  step = distill.make_distill_step(plan, ctx.preprocess, ctx.mesh, jax.random.key(1), tr.images,
                                   tr.labels, teacher_vars, last_block=block)
  losses = []
  for s in range(steps):
    idx = feed.put_global(tr.train_batch(DISTILL_BATCH, 1, s), feed.sharded(ctx.mesh))
    state, metrics = step(state, idx)
    losses.append(float(metrics[f"{block}/{name}"]))
  assert all(math.isfinite(l) for l in losses)
  # It learns: the loss falls (about 0.8x of the first in 20 steps, depending on the teacher; a
  # candidate that got no gradient stays at 1.0x).
  assert np.mean(losses[-3:]) < 0.9 * losses[0], losses
  for x, y in zip(jax.tree.leaves(init["params"]), jax.tree.leaves(state.params)):
    assert not np.array_equal(x, np.asarray(y))


# ---------------------------------------------------------------------------------------------
# 4. Costs are additive.
# ---------------------------------------------------------------------------------------------

_COST_CACHE: dict = {}


def _spec_costs(spec, in_shape):
  key = (spec.kind, spec.options, tuple(in_shape))
  if key not in _COST_CACHE:
    _COST_CACHE[key] = cost.spec_costs(spec, in_shape)
  return _COST_CACHE[key]


@pytest.mark.parametrize("name,options,shape,draws", [
    ("resnet20", {}, (28, 28, 1), 3),
    ("resnet20", {"shortcut": "B"}, (32, 32, 3), 1),
    ("vgg11", {"classifier": "zoo"}, (32, 32, 3), 2),
    ("mobilenet_v2", {"width": 0.5}, (28, 28, 1), 1),
], ids=["resnet20", "resnet20-B", "vgg11-zoo", "mobilenet_v2"])
def test_costs_of_a_random_student_add_up(name, options, shape, draws):
  teacher = get_model(name, 10, **options)
  ins = cost.block_input_shapes(teacher, shape)
  outs = cost.feature_shapes(teacher, shape)
  menus = {b.name: distill.menu(b, ins[b.name], outs[b.name], list(candidates.CANDIDATES))
           for b in teacher.blocks}
  fixed = {k: _spec_costs(teacher.stem, shape)[k] + _spec_costs(teacher.head,
                                                                 ins[teacher.head.name])[k]
           for k in ("flops", "macs", "params")}
  rng = np.random.default_rng(0)
  for _ in range(draws):
    choice = {b: menu[rng.choice(sorted(menu))] for b, menu in menus.items()}
    summed = dict(fixed)
    for b, spec in choice.items():
      for k, v in _spec_costs(spec, ins[b]).items():
        summed[k] += v
    whole = cost.module_costs(teacher.with_blocks(choice), shape)
    assert whole["params"] == summed["params"]
    assert whole["macs"] == summed["macs"]
    assert whole["flops"] == pytest.approx(summed["flops"], rel=0.01)
    assert whole["params"] > 0 and whole["macs"] > 0


# ---------------------------------------------------------------------------------------------
# 5. The parallel step compiles once.
# ---------------------------------------------------------------------------------------------


@requires_fmnist
def test_parallel_step_traces_once(teacher_and_ctx):
  teacher_net, teacher_vars, ctx = teacher_and_ctx
  plan = distill.distill_setup(teacher_net, ctx.dataset.image_shape, ("keep", "slim_0.5", "slim_0.25"))
  plan = dataclasses.replace(plan, menus=plan.menus[:2])  # two blocks, two candidates each
  steps = 3
  tcfg = _distill_tcfg(steps)
  state = jax.device_put(train.create_state(distill.init_candidates(plan, 0), tcfg, steps),
                         feed.replicated(ctx.mesh))
  chex.clear_trace_counter()

  @chex.assert_max_traces(n=1)
  def step_fn(state, idx, key, images, labels, teacher_vars):
    return distill.distill_step(state, idx, key, images, labels, teacher_vars, setup=plan,
                                preprocess=ctx.preprocess, mesh=ctx.mesh, last_block=None)

  jitted = jax.jit(step_fn, donate_argnums=0)
  tr = ctx.splits["train"]
  key = jax.random.key(1)
  idx_of = lambda s, b=DISTILL_BATCH: feed.put_global(tr.train_batch(b, 1, s),
                                                      feed.sharded(ctx.mesh))
  for s in range(steps):
    state, metrics = jitted(state, idx_of(s), key, tr.images, tr.labels, teacher_vars)
  assert int(state.step) == steps
  assert set(metrics) == {"loss", *(f"{b}/{c}" for b, m in plan.menus for c, _ in m)}
  assert jitted._cache_size() == 1
  # The guard is live: a batch of another shape would be a retrace and is caught at trace time.
  with pytest.raises(AssertionError, match="traced > 1 times"):
    jitted(state, idx_of(0, DISTILL_BATCH // 2), key, tr.images, tr.labels, teacher_vars)
  chex.clear_trace_counter()


# ---------------------------------------------------------------------------------------------
# 6. scores.json after the distill phase; completed phases are skipped.
# ---------------------------------------------------------------------------------------------


def _finite_numbers(obj, path=""):
  """Every number in a JSON tree as (path, value)."""
  if isinstance(obj, dict):
    for k, v in obj.items():
      yield from _finite_numbers(v, f"{path}/{k}")
  elif isinstance(obj, list):
    for i, v in enumerate(obj):
      yield from _finite_numbers(v, f"{path}[{i}]")
  elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
    yield path, obj


@requires_fmnist
def test_scores_json_is_complete_and_finite(pipeline_run):
  workdir, cfg = pipeline_run["workdir"], pipeline_run["cfg"]
  path = os.path.join(workdir, "distill", "scores.json")
  assert os.path.exists(path)
  with open(path) as f:
    scores = json.load(f)
  numbers = list(_finite_numbers(scores))
  assert numbers
  bad = [(p, v) for p, v in numbers if not math.isfinite(v)]
  assert not bad, bad

  teacher_net, _, spec = artifacts.load_model(os.path.join(workdir, "teacher"))
  shape = tuple(spec["image_shape"])
  assert shape == (28, 28, 1)
  ins, outs = cost.block_input_shapes(teacher_net, shape), cost.feature_shapes(teacher_net, shape)
  assert scores["block_order"] == list(teacher_net.block_names)
  assert set(scores["blocks"]) == set(teacher_net.block_names)
  rows = 0
  for block in teacher_net.blocks:
    menu = distill.menu(block, ins[block.name], outs[block.name], cfg.distill.candidates)
    got = scores["blocks"][block.name]
    assert set(got) == set(menu), block.name
    for c, spec in menu.items():
      row = got[c]
      rows += 1
      assert net_lib.LayerSpec.from_json(row["spec"]) == spec
      assert {"nmse", "hybrid_accuracy", "flops", "macs", "params"} <= set(row)
      assert 0.0 <= row["hybrid_accuracy"] <= 1.0 and row["nmse"] >= 0.0
    assert got["keep"]["nmse"] == 0.0, f"{block.name}: keep must reproduce the teacher exactly"
  assert rows == pipeline_run["first"]["distill"]["candidates"]

  # keep leaves the teacher intact: its hybrid accuracy is the teacher's validation accuracy.
  teacher_result = pipeline_run["first"]["teacher"]
  keep_acc = {scores["blocks"][b]["keep"]["hybrid_accuracy"] for b in teacher_net.block_names}
  assert keep_acc == {scores["teacher"]["val_accuracy"]}
  assert scores["teacher"]["val_accuracy"] == pytest.approx(teacher_result["val_accuracy"],
                                                            abs=1e-9)
  assert scores["examples"] == VALIDATION_SIZE
  # The teacher's parts are the costs of keep.
  for b in teacher_net.block_names:
    for k in ("flops", "macs", "params"):
      assert scores["teacher"]["blocks"][b][k] == scores["blocks"][b]["keep"][k]
  # skip never costs anything.
  for b, m in scores["blocks"].items():
    if "skip" in m:
      assert m["skip"]["params"] == 0 and m["skip"]["macs"] == 0


@requires_fmnist
def test_scores_equal_the_swapped_network_run_whole(pipeline_run, teacher_and_ctx):
  """Every candidate's nmse and hybrid accuracy in scores.json against an independent reference:
  the teacher with that one block swapped, built as a whole network (BlockNet.with_blocks) and run
  end to end in one apply, reduced in NumPy. Scoring runs prefix, candidate and suffix apart, and
  runs the teacher once for `keep`; both shortcuts must give these numbers."""
  workdir = pipeline_run["workdir"]
  teacher_net, teacher_vars, ctx = teacher_and_ctx
  with open(os.path.join(workdir, "distill", "scores.json")) as f:
    scores = json.load(f)
  with ocp.StandardCheckpointer() as ckptr:
    cand_vars = ckptr.restore(os.path.join(workdir, "distill", "candidates"))
  val = data.load_dataset(pipeline_run["cfg"].data).validation
  x = ctx.preprocess(jnp.asarray(val.images))
  t_logits, t_feats = jax.jit(teacher_net.apply)(teacher_vars, x)
  teacher_acc = float(np.mean(np.argmax(np.asarray(t_logits), -1) == val.labels))
  assert scores["teacher"]["val_accuracy"] == pytest.approx(teacher_acc, abs=1e-9)
  checked = 0
  for b in teacher_net.block_names:
    for c, row in scores["blocks"][b].items():
      spec = net_lib.LayerSpec.from_json(row["spec"])
      hybrid = teacher_net.with_blocks({b: spec})
      own = ({k: v[b] for k, v in teacher_vars.items() if b in v} if c == "keep" else
             {k: v[b][c] for k, v in cand_vars.items() if b in v and c in v[b]})
      variables = {k: {**{n: w for n, w in teacher_vars[k].items() if n != b},
                       **({b: own[k]} if k in own else {})} for k in teacher_vars}
      logits, feats = jax.jit(hybrid.apply)(variables, x)
      acc = float(np.mean(np.argmax(np.asarray(logits), -1) == val.labels))
      out, target = np.asarray(feats[b], np.float64), np.asarray(t_feats[b], np.float64)
      nmse = float(np.sum((out - target) ** 2) / np.sum(target ** 2))
      # One image may flip on a logit tie broken differently by the two compiled programs.
      assert abs(row["hybrid_accuracy"] - acc) <= 1.0 / val.labels.size + 1e-12, (b, c)
      assert row["nmse"] == pytest.approx(nmse, rel=1e-4, abs=1e-7), (b, c)
      checked += c != "keep"
  assert checked >= len(teacher_net.block_names)  # slim or skip in every block, not only keep


@requires_fmnist
def test_rerun_skips_completed_phases(pipeline_run):
  first, second = pipeline_run["first"], pipeline_run["second"]
  assert set(first) == set(second) == {"teacher", "distill"}
  assert second == json.loads(json.dumps(first))  # read back from the result files
  assert _mtimes(pipeline_run["workdir"]) == pipeline_run["mtimes"]
  assert first["distill"]["trained_candidates"] > 0


# ---------------------------------------------------------------------------------------------
# Losses against NumPy references.
# ---------------------------------------------------------------------------------------------


def _np_log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_hinton_kd_matches_numpy(temperature, scale):
  rng = np.random.default_rng(int(temperature * 10 + scale))
  s = rng.normal(0, scale, (16, 10)).astype(np.float32)
  t = rng.normal(0, scale, (16, 10)).astype(np.float32)
  log_pt = _np_log_softmax(t.astype(np.float64) / temperature)
  log_ps = _np_log_softmax(s.astype(np.float64) / temperature)
  expected = np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=-1)) * temperature ** 2
  got = hinton_kd(jnp.asarray(s), jnp.asarray(t), temperature)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), expected, rtol=1e-4, atol=1e-6)
  # KL is zero between identical distributions and non-negative otherwise.
  assert abs(float(hinton_kd(jnp.asarray(t), jnp.asarray(t), temperature))) < 1e-5
  assert float(got) >= 0.0
  # Low-precision logits are upcast: the same value from bfloat16 inputs (rounded the same way).
  s16, t16 = jnp.asarray(s, jnp.bfloat16), jnp.asarray(t, jnp.bfloat16)
  ref16 = hinton_kd(s16.astype(jnp.float32), t16.astype(jnp.float32), temperature)
  got16 = hinton_kd(s16, t16, temperature)
  assert got16.dtype == jnp.float32
  np.testing.assert_allclose(float(got16), float(ref16), rtol=1e-6)


def test_normalized_mse_matches_numpy():
  rng = np.random.default_rng(0)
  for scale in (1e-2, 1.0, 1e3):
    target = rng.normal(0.5, 1.0, (4, 7, 7, 8)).astype(np.float32) * scale
    pred = target + rng.normal(0, 0.3, target.shape).astype(np.float32) * scale
    t64, p64 = target.astype(np.float64), pred.astype(np.float64)
    expected = np.mean((p64 - t64) ** 2) / (np.mean(t64 ** 2) + 1e-8)
    got = normalized_mse(jnp.asarray(pred), jnp.asarray(target))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  # Scale-free: blocks of different scale compare; zero for a perfect prediction.
  a = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
  b = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
  np.testing.assert_allclose(float(normalized_mse(a * 100, b * 100)), float(normalized_mse(a, b)),
                             rtol=1e-5)
  assert float(normalized_mse(a, a)) == 0.0
  # Predicting zeros scores exactly one (up to the epsilon).
  np.testing.assert_allclose(float(normalized_mse(jnp.zeros_like(b), b)), 1.0, rtol=1e-6)
