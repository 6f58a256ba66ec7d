"""Tests for the training loop and the teacher phase: accuracy on real data, reload of the saved
teacher, exact resume after a crash, the NaN guard, config validation."""
import json
import logging
import glob
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from compactkd_jax import artifacts, config, data, feed, pipeline, supervised, train
from compactkd_jax.errors import UserError
from compactkd_jax.models import get_model

from conftest import make_tiny_config

# ---- (a) a narrow teacher through the pipeline, on real Fashion-MNIST ----


@pytest.fixture(scope="module")
def trained_teacher(fmnist_dir, tmp_path_factory):
  """ResNet-20 at half width, 300 steps of 32 on 5,000 real images (about 35 s here)."""
  cfg = make_tiny_config(train_limit=6000, validation_size=1000, test_limit=2000, width=0.5,
                         steps=300, batch_size=32, learning_rate=0.05)
  workdir = str(tmp_path_factory.mktemp("teacher_run"))
  results = pipeline.run(cfg, workdir)
  return cfg, workdir, results


def test_teacher_reaches_accuracy(trained_teacher):
  cfg, workdir, results = trained_teacher
  with open(os.path.join(workdir, "teacher", "result.json")) as f:
    result = json.load(f)
  assert result == pytest.approx(json.loads(json.dumps(results["teacher"])))
  assert result["steps"] == 300
  assert result["test_accuracy"] > 0.80, result
  assert result["val_accuracy"] > 0.80, result
  # The run's config is recorded for resume checks.
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["teacher"]["options"]["width"] == 0.5


def test_saved_teacher_reloads_with_same_accuracy(trained_teacher):
  cfg, workdir, _ = trained_teacher
  with open(os.path.join(workdir, "teacher", "result.json")) as f:
    result = json.load(f)
  net, variables, spec = artifacts.load_model(os.path.join(workdir, "teacher"))
  assert net == get_model("resnet20", 10, width=0.5)
  assert spec["image_shape"] == [28, 28, 1] and spec["num_classes"] == 10
  dataset = data.load_dataset(cfg.data)
  mesh = feed.make_mesh()
  preprocess = artifacts.preprocess_of(spec)
  # The stored normalization is the training split's, recomputed independently here.
  pixels = dataset.train.images.astype(np.float64) / 255.0
  assert preprocess.mean[0] == pytest.approx(pixels.mean(), rel=1e-9)
  assert preprocess.std[0] == pytest.approx(pixels.std(), rel=1e-9)
  for split in ("validation", "test"):
    ev = supervised.evaluate(net, variables,
                             feed.DeviceSplit.create(getattr(dataset, split), mesh), preprocess,
                             mesh, 500)
    key = "val_accuracy" if split == "validation" else "test_accuracy"
    assert ev["accuracy"] == pytest.approx(result[key], abs=1e-9)


def test_finished_phase_is_not_rerun(trained_teacher):
  cfg, workdir, results = trained_teacher
  written = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(workdir, "teacher", "**"),
                                                          recursive=True)}
  again = pipeline.run(cfg, workdir)
  assert again["teacher"] == pytest.approx(json.loads(json.dumps(results["teacher"])))
  # Nothing of the teacher was rewritten: no training happened.
  assert written == {p: os.stat(p).st_mtime_ns for p in glob.glob(
      os.path.join(workdir, "teacher", "**"), recursive=True)}


def test_stale_phase_is_refused_after_an_earlier_one_is_redone(tmp_path, fmnist_dir):
  """Delete the teacher, change its training, rerun: the teacher retrains, and the distillation
  computed from the old teacher is not silently reused."""
  cfg = make_tiny_config(steps=6)
  cfg.phases = ("teacher", "distill")
  cfg.distill.candidates = ("keep", "slim_0.5", "skip")
  cfg.distill.score_examples = 100
  t = cfg.distill.train
  t.steps, t.batch_size, t.log_every_steps, t.checkpoint_every_steps = 4, 32, 4, 4
  workdir = str(tmp_path / "w")
  pipeline.run(cfg, workdir)
  pipeline.run(cfg, workdir)  # unchanged: everything skipped, nothing refused
  shutil.rmtree(os.path.join(workdir, "teacher"))
  shutil.rmtree(os.path.join(workdir, "checkpoints", "teacher"))
  cfg.teacher.train.steps = 8
  with pytest.raises(UserError, match=r"\[distill\] was computed from other results.*delete .*distill .*checkpoints/distill"):
    pipeline.run(cfg, workdir)
  assert json.load(open(os.path.join(workdir, "teacher", "result.json")))["steps"] == 8
  for stale in ("distill", os.path.join("checkpoints", "distill")):  # as the message says
    shutil.rmtree(os.path.join(workdir, stale))
  pipeline.run(cfg, workdir)
  pipeline.run(cfg, workdir)


def _claim(cfg, workdir: str) -> None:
  """What pipeline.run does around loading the data: check the workdir, then claim it."""
  pipeline.claim_workdir(workdir, pipeline.check_workdir(cfg, workdir))


def test_workdir_of_another_config_is_user_error(tmp_path):
  cfg = make_tiny_config()
  _claim(cfg, str(tmp_path))
  _claim(cfg, str(tmp_path))  # the same config may resume
  os.makedirs(tmp_path / "teacher")
  _claim(cfg, str(tmp_path))  # an empty folder is no start: a failed run locks nothing
  cfg.teacher.options.width = 0.5
  _claim(cfg, str(tmp_path))
  cfg.teacher.options.width = 0.25
  _claim(cfg, str(tmp_path))
  (tmp_path / "teacher" / "model.json").write_text("{}")  # started: its architecture is fixed
  other = cfg.copy_and_resolve_references()
  other.teacher.options.width = 0.5
  with pytest.raises(UserError, match="teacher.options.width"):
    _claim(other, str(tmp_path))
  # A lower learning rate for a phase that has not finished (after a NaN, say) is accepted ...
  cfg.teacher.train.learning_rate = 0.01
  _claim(cfg, str(tmp_path))
  # ... but not once the phase is done: its result would no longer match the config.
  (tmp_path / "teacher" / "result.json").write_text("{}")
  cfg.teacher.train.learning_rate = 0.5
  with pytest.raises(UserError, match="learning_rate"):
    _claim(cfg, str(tmp_path))
  # Settings of a phase that has not started may change (another budget after the same
  # distillation); data and seed never.
  cfg.teacher.train.learning_rate = 0.01
  cfg.select.budget = 0.25
  _claim(cfg, str(tmp_path))
  os.makedirs(tmp_path / "select")
  (tmp_path / "select" / "result.json").write_text("{}")
  cfg.select.budget = 0.3
  with pytest.raises(UserError, match="select.budget"):
    _claim(cfg, str(tmp_path))
  cfg.select.budget, cfg.seed = 0.25, 1
  with pytest.raises(UserError, match="seed"):
    _claim(cfg, str(tmp_path))
  # A workdir made before a config key existed resumes while the key stays at its default.
  cfg.seed = 0
  _claim(cfg, str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["data"]["shards"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  _claim(cfg, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["data"]["shards"] == 0  # written back
  (tmp_path / "config.json").write_text(json.dumps(saved))
  cfg.data.shards = 2
  with pytest.raises(UserError, match="data.shards"):
    _claim(cfg, str(tmp_path))


def test_a_phase_with_a_checkpoint_has_started(tmp_path):
  """The baselines phase writes its folder only when done; its checkpoints mark it as started."""
  cfg = make_tiny_config()
  _claim(cfg, str(tmp_path))
  cfg.baselines.kinds = ("scratch",)
  _claim(cfg, str(tmp_path))  # not started: may change
  os.makedirs(tmp_path / "checkpoints" / "baseline_scratch")
  cfg.baselines.kinds = ("scratch", "kd")
  _claim(cfg, str(tmp_path))  # an empty checkpoint folder is no start
  cfg.baselines.kinds = ("scratch",)
  _claim(cfg, str(tmp_path))
  os.makedirs(tmp_path / "checkpoints" / "baseline_scratch" / "10")  # a saved step
  cfg.baselines.kinds = ("scratch", "kd")
  with pytest.raises(UserError, match="baselines.kinds"):
    _claim(cfg, str(tmp_path))
  cfg.baselines.kinds = ("scratch",)
  cfg.baselines.train.learning_rate = 0.05  # training settings of an unfinished phase: may change
  _claim(cfg, str(tmp_path))


# ---- (b) resume after a crash equals an uninterrupted run ----

TOTAL_STEPS = 6
CHECKPOINT_EVERY = 3
CRASH_AFTER = 5  # steps completed before the crash
LAST_CHECKPOINT = 3  # where the rerun must resume: neither 0 nor the crash point


class Crash(Exception):
  pass


@pytest.fixture(scope="module")
def loop_parts(small_dataset):
  """A narrow ResNet-20, its jit-compiled classification step (with augmentation, so the RNG
  stream matters) and deterministic host-side initial variables."""
  mesh = feed.make_mesh()
  net = get_model("resnet20", 10, width=0.25)
  preprocess = feed.Preprocess.from_split(small_dataset.train, 2, True)
  split = feed.DeviceSplit.create(small_dataset.train, mesh)
  step = supervised.make_classify_step(net, preprocess, mesh, jax.random.key(7), split.images,
                                       split.labels)
  abstract = jax.eval_shape(net.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, *small_dataset.image_shape), jnp.float32))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      return rng.normal(0, np.sqrt(2.0 / np.prod(leaf.shape[:-1])), leaf.shape).astype(np.float32)
    if name.endswith("['var']") or name.endswith("['scale']"):
      return np.ones(leaf.shape, np.float32)
    return np.zeros(leaf.shape, np.float32)

  host = jax.tree_util.tree_map_with_path(fill, abstract)
  host = {"params": host["params"], "batch_stats": host["batch_stats"]}
  return mesh, split, step, host


def _tcfg(learning_rate=0.05):
  tcfg = config.train_defaults(epochs=1, learning_rate=learning_rate)
  tcfg.steps, tcfg.batch_size = TOTAL_STEPS, 16
  return tcfg


_TEMPLATES = {}


def _fresh_state(loop_parts, tcfg):
  """A new initial state with its own buffers (the step donates the state it is given). The
  optimizer object is reused per config: a new one changes the state's treedef, which would make
  the jit-compiled step recompile (seconds each)."""
  mesh, _, _, host = loop_parts
  key = (id(loop_parts), tcfg.learning_rate, tcfg.steps)
  if key not in _TEMPLATES:
    _TEMPLATES[key] = jax.device_get(train.create_state(host, tcfg, tcfg.steps))
  return jax.device_put(jax.tree.map(np.array, _TEMPLATES[key]), feed.replicated(mesh))


def _spec(loop_parts, tcfg, directory, step_fn=None, batch_log=None, every=CHECKPOINT_EVERY):
  mesh, split, step, _ = loop_parts

  def batch_fn(s):
    if batch_log is not None:
      batch_log.append(s)
    return feed.put_global(split.train_batch(tcfg.batch_size, 3, s),
                           feed.sharded(mesh))

  return train.LoopConfig(name="resume_test", total_steps=tcfg.steps, step_fn=step_fn or step,
                        batch_fn=batch_fn, checkpoint_dir=directory, log_every=every,
                        checkpoint_every=every)


def _finalized_steps(directory):
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def _wait_for_checkpoint(directory, step, timeout=30.0):
  """The crashed loop's async save finishes in the background; a killed process could lose it."""
  deadline = time.time() + timeout
  while step not in _finalized_steps(directory) and time.time() < deadline:
    time.sleep(0.05)
  time.sleep(0.2)


def test_resume_after_crash_equals_uninterrupted_run(loop_parts, tmp_path, caplog):
  tcfg = _tcfg()
  _, _, step, _ = loop_parts
  reference = jax.device_get(train.run_loop(_spec(loop_parts, tcfg, str(tmp_path / "ref")),
                                            _fresh_state(loop_parts, tcfg)))
  # A finished loop restores its final checkpoint and runs no step.
  rerun_calls = []
  rerun = train.run_loop(_spec(loop_parts, tcfg, str(tmp_path / "ref"),
                               lambda s, i: rerun_calls.append(1) or step(s, i)),
                         _fresh_state(loop_parts, tcfg))
  assert rerun_calls == [] and int(rerun.step) == TOTAL_STEPS
  for a, b in zip(jax.tree.leaves(reference.params), jax.tree.leaves(jax.device_get(rerun.params))):
    np.testing.assert_array_equal(a, b)

  calls = []

  def crashing_step(state, idx):
    if len(calls) == CRASH_AFTER:
      raise Crash("simulated crash")
    calls.append(int(state.step))
    return step(state, idx)

  directory = str(tmp_path / "crashed")
  with pytest.raises(Crash):
    train.run_loop(_spec(loop_parts, tcfg, directory, crashing_step),
                   _fresh_state(loop_parts, tcfg))
  assert calls == list(range(CRASH_AFTER))
  _wait_for_checkpoint(directory, LAST_CHECKPOINT)
  assert _finalized_steps(directory) == [LAST_CHECKPOINT]

  resumed_calls, batches = [], []

  def counting_step(state, idx):
    resumed_calls.append(int(state.step))
    return step(state, idx)

  with caplog.at_level(logging.INFO):
    final = jax.device_get(train.run_loop(
        _spec(loop_parts, tcfg, directory, counting_step, batches), _fresh_state(loop_parts, tcfg)))
  # The rerun starts at the last checkpoint, not at step 0 and not at the crash.
  assert resumed_calls == list(range(LAST_CHECKPOINT, TOTAL_STEPS))
  assert batches == list(range(LAST_CHECKPOINT, TOTAL_STEPS))
  assert any(f"resumed from checkpoint at step {LAST_CHECKPOINT}" in r.getMessage()
             for r in caplog.records)
  assert int(final.step) == int(reference.step) == TOTAL_STEPS
  for part in ("params", "batch_stats", "opt_state"):
    ref_leaves = jax.tree.leaves(getattr(reference, part))
    got_leaves = jax.tree.leaves(getattr(final, part))
    assert len(ref_leaves) == len(got_leaves)
    for r, g in zip(ref_leaves, got_leaves):
      np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=0, atol=1e-6)
  # Nothing random about it: the resumed run is bit-identical on this backend.
  for r, g in zip(jax.tree.leaves(reference.params), jax.tree.leaves(final.params)):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(r))
  # Training moved the parameters (the comparison above is not between two initial states).
  _, _, _, host = loop_parts
  moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(host["params"]),
                                                 jax.tree.leaves(final.params))]
  assert sum(moved) > len(moved) // 2


def test_a_resumed_loop_counts_the_seconds_of_the_interrupted_one(loop_parts, tmp_path):
  """The equal-cost baselines are priced from the phases' recorded seconds: a phase resumed after an
  interruption must count what its earlier process spent up to the checkpoint it resumed from (and
  not the steps after it, which are redone), not only its own wall time."""
  tcfg = _tcfg()
  _, _, step, _ = loop_parts
  pause = 0.2  # far above a step's compute, so the seconds are known to within the pauses

  def slow_step(state, idx):
    time.sleep(pause)
    return step(state, idx)

  calls = []

  def crashing_step(state, idx):
    if len(calls) == CRASH_AFTER:
      raise Crash("simulated crash")
    calls.append(1)
    return slow_step(state, idx)

  directory = str(tmp_path / "timed")
  first = train.PriorWork()
  spec = _spec(loop_parts, tcfg, directory, crashing_step)
  spec.prior = first
  started = time.perf_counter()
  with pytest.raises(Crash):
    train.run_loop(spec, _fresh_state(loop_parts, tcfg))
  first_process = time.perf_counter() - started
  assert first.seconds == 0.0  # a fresh start has no earlier work
  _wait_for_checkpoint(directory, LAST_CHECKPOINT)
  resumed = train.PriorWork()
  spec = _spec(loop_parts, tcfg, directory, slow_step)
  spec.prior = resumed
  started = time.perf_counter()
  train.run_loop(spec, _fresh_state(loop_parts, tcfg))
  second_process = time.perf_counter() - started
  # What the first process spent up to its checkpoint: at least the LAST_CHECKPOINT pauses (and
  # the step's compilation), without the steps after it, which the resumed run redid.
  assert resumed.seconds >= LAST_CHECKPOINT * pause
  assert first_process - resumed.seconds >= (CRASH_AFTER - LAST_CHECKPOINT) * pause
  # A finished loop run again counts the whole loop once, across both processes.
  again = train.PriorWork()
  spec = _spec(loop_parts, tcfg, directory, slow_step)
  spec.prior = again
  train.run_loop(spec, _fresh_state(loop_parts, tcfg))
  assert again.seconds >= resumed.seconds + (TOTAL_STEPS - LAST_CHECKPOINT) * pause
  assert again.seconds <= resumed.seconds + second_process


def test_checkpoints_of_another_run_length_are_refused(loop_parts, tmp_path):
  """A loop's cosine schedule depends on its length: checkpoints made for 6 steps must not be
  resumed by a 9-step run (e.g. an equal-cost baseline recalibrated to another step count)."""
  tcfg = _tcfg()
  directory = str(tmp_path / "six_steps")
  _, _, step, _ = loop_parts

  def crashing_step(state, idx):  # stops after the first checkpoint, as an interrupted run would
    if int(state.step) == CRASH_AFTER:
      raise Crash("simulated crash")
    return step(state, idx)

  with pytest.raises(Crash):
    train.run_loop(_spec(loop_parts, tcfg, directory, crashing_step),
                   _fresh_state(loop_parts, tcfg))
  _wait_for_checkpoint(directory, LAST_CHECKPOINT)
  longer = _tcfg()
  longer.steps = TOTAL_STEPS + CHECKPOINT_EVERY
  with pytest.raises(UserError) as e:
    train.run_loop(_spec(loop_parts, longer, directory), _fresh_state(loop_parts, longer))
  message = str(e.value)
  assert f"made for a {TOTAL_STEPS}-step run" in message and f"has {longer.steps} steps" in message
  assert directory in message and "\n" not in message
  assert _finalized_steps(directory) == [LAST_CHECKPOINT]  # nothing lost
  # The original length still resumes from it.
  final = train.run_loop(_spec(loop_parts, tcfg, directory), _fresh_state(loop_parts, tcfg))
  assert int(final.step) == TOTAL_STEPS


def test_an_empty_checkpoint_folder_of_another_length_is_reused(loop_parts, tmp_path):
  tcfg = _tcfg()
  directory = str(tmp_path / "empty")
  train.checkpoint_manager(directory, total_steps=99).close()  # a run killed before saving
  final = train.run_loop(_spec(loop_parts, tcfg, directory), _fresh_state(loop_parts, tcfg))
  assert int(final.step) == TOTAL_STEPS
  recorded = train.checkpoint_manager(directory).metadata().custom_metadata
  assert recorded == {"total_steps": TOTAL_STEPS}


# ---- (c) the NaN guard ----


@pytest.fixture(scope="module")
def diverged_run(loop_parts, tmp_path_factory):
  """40 steps at learning rate 1e6, logging and checkpointing every step: (error, checkpoint dir).
  The weights blow up within a few steps, so some finite checkpoints exist before the failure."""
  tcfg = _tcfg(learning_rate=1e6)
  tcfg.steps = 40
  directory = str(tmp_path_factory.mktemp("diverged"))
  spec = _spec(loop_parts, tcfg, directory, every=1)
  spec.lr_hint = "config.teacher.train.learning_rate"
  with pytest.raises(UserError) as e:
    train.run_loop(spec, _fresh_state(loop_parts, tcfg))
  return e.value, directory, tcfg


def test_absurd_learning_rate_is_user_error(diverged_run):
  error, _, _ = diverged_run
  assert "not finite" in str(error)
  assert "config.teacher.train.learning_rate" in str(error)


def test_nan_guard_keeps_only_finite_checkpoints(loop_parts, diverged_run):
  """'checkpoints up to the last good step are kept': every kept checkpoint must be usable."""
  _, directory, tcfg = diverged_run
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _fresh_state(loop_parts, tcfg))
  manager = train.checkpoint_manager(directory)
  assert manager.all_steps()
  bad = {}
  for s in manager.all_steps():
    restored = manager.restore(s, args=ocp.args.StandardRestore(abstract))
    nonfinite = [jax.tree_util.keystr(p) for p, leaf in jax.tree_util.tree_leaves_with_path(
        {"params": restored.params, "batch_stats": restored.batch_stats,
         "opt_state": restored.opt_state})
                 if jnp.issubdtype(leaf.dtype, jnp.floating) and not np.all(np.isfinite(leaf))]
    if nonfinite:
      bad[s] = f"{len(nonfinite)} non-finite arrays, e.g. {nonfinite[0]}"
  manager.close()
  assert not bad, f"checkpoints kept after the NaN guard fired hold non-finite state: {bad}"


# ---- (d) config validation ----


def test_validate_rejects_unknown_key_listing_valid_ones():
  cfg = config.default_config()
  cfg.teacher.nope = 1
  with pytest.raises(UserError) as e:
    config.validate(cfg)
  message = str(e.value)
  assert "teacher.nope" in message
  for key in ("model", "checkpoint", "options", "train"):
    assert key in message


def test_validate_rejects_unknown_nested_key_and_bad_values():
  cfg = config.default_config()
  cfg.teacher.train.lr = 0.1
  with pytest.raises(UserError, match="learning_rate"):
    config.validate(cfg)
  cfg = config.default_config()
  cfg.teacher.train.learning_rate = -0.1
  with pytest.raises(UserError, match=r"teacher\.train\.learning_rate=-0\.1 must be finite and > 0"):
    config.validate(cfg)
  cfg = config.default_config()
  cfg.phases = ("teacher", "nope")
  with pytest.raises(UserError, match="teacher"):
    config.validate(cfg)


def test_validate_accepts_defaults_and_model_options_reach_the_network():
  """The defaults validate; a model option from the key table reaches the network; a value
  outside the table is refused by validate, before anything is built."""
  from compactkd_jax.phases import teacher
  config.validate(config.default_config())
  cfg = config.default_config()
  cfg.teacher.options.shortcut = "B"
  config.validate(cfg)
  net = teacher.build(cfg, 10)
  assert {dict(b.options)["shortcut"] for b in net.blocks} == {"B"}
  cfg.teacher.options.shortcut = "C"
  with pytest.raises(UserError, match="teacher.options.shortcut='C' is not valid; valid: A, B"):
    config.validate(cfg)
