"""Property tests of the config key table (compactkd_jax/config_keys.py).

Overrides are drawn from the table itself (every numeric key, in every training section) with
hostile values (NaN, inf, 0, negative, huge, fractional): `validate` either passes with every value
inside its declared range or ends in a one-line `UserError` naming an offending key. A second test
runs the accepted configs for real (a tiny teacher run): each either completes or ends in a
one-line `UserError`; never another exception. Draws are derandomized so CI is reproducible.
"""
import math
import os
import tempfile

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from compactkd_jax import config as config_lib
from compactkd_jax import config_keys, pipeline
from compactkd_jax.errors import UserError

from conftest import REPO_ROOT, make_tiny_config

NUMERIC = {k: r for k, r in config_keys.rules().items() if r.low is not None}
HOSTILE = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -1, -1e-9, 1, 0.5,
                                     1e308, -0.0, 0.999999]),
                    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))


def _set(cfg, key: str, value) -> bool:
  node = cfg
  *path, last = key.split(".")
  for part in path:
    node = node[part]
  if isinstance(node[last], int) and not isinstance(node[last], bool):
    if not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
      return False  # an int key given a float: the CLI's type check, not validate's
    value = int(value)
  else:
    value = float(value)
  node[last] = value
  return True


def _inside(value, rule) -> bool:
  try:
    config_keys._check_value("k", value, rule)
    return True
  except UserError:
    return False


# Keys that are fractions of the teacher when select.relative is on (the default): at most 1.0.
FRACTIONS = ("select.budget", "select.constraints.flops", "select.constraints.macs",
             "select.constraints.params", "select.constraints.latency")


def _outside_keys(cfg, overrides) -> list[str]:
  applied = {k for k, v in overrides if _set(cfg, k, v)}
  value = lambda k: config_keys.value_at(cfg, k)
  return [k for k in applied if not _inside(value(k), NUMERIC[k]) or
          (k in FRACTIONS and cfg.select.relative and value(k) > 1.0)]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(sorted(NUMERIC)), HOSTILE), min_size=1, max_size=3))
def test_validate_accepts_only_declared_ranges(overrides):
  cfg = config_lib.default_config()
  outside = _outside_keys(cfg, overrides)
  try:
    config_lib.validate(cfg)
  except UserError as e:
    message = str(e)
    assert "\n" not in message
    if outside:  # every value is checked before the rules that tie keys together
      assert any(f"config.{k}" in message for k in outside), message
    else:
      assert "needs epochs > 0 or steps > 0" in message, message
    return
  assert not outside, f"accepted out-of-range values: {outside}"


def test_every_default_key_has_a_rule_and_every_rule_a_key():
  def leaves(node, prefix=""):
    for k, v in node.items():
      if hasattr(v, "keys"):
        yield from leaves(v, f"{prefix}{k}.")
      else:
        yield f"{prefix}{k}"
  assert set(leaves(config_lib.default_config())) == set(config_keys.rules())


def test_key_reference_is_current():
  with open(os.path.join(REPO_ROOT, "docs", "config_keys.md")) as f:
    committed = f.read()
  assert committed == config_keys.describe_markdown(config_lib.default_config()), (
      "docs/config_keys.md is stale: python -m compactkd_jax.config > docs/config_keys.md")


@pytest.mark.parametrize("key, value, needle", [
    ("teacher.options.shortcut", "C", "valid: A, B"),
    ("baselines.kinds", ("kd", "prune"), "unknown ['prune']"),
    ("finetune.kd.alpha", 1.0000001, "and <= 1"),
    ("teacher.train.momentum", 1.0, "< 1"),
    ("seed", -1, ">= 0"),
    ("teacher.options.dropout", 1.0, "< 1")])
def test_rule_kinds(key, value, needle):
  cfg = config_lib.default_config()
  *path, last = key.split(".")
  node = cfg
  for part in path:
    node = node[part]
  node[last] = value
  with pytest.raises(UserError, match=f"config.{key}") as e:
    config_lib.validate(cfg)
  assert needle in str(e.value)
  config_keys.check(config_lib.default_config())  # the defaults themselves pass


def test_a_tuple_rule_refuses_a_bare_string():
  """ConfigDict keeps a key's type, but a config file may build its own: a bare string is not
  read as a tuple of characters."""
  with pytest.raises(UserError, match=r"config.phases='teacher' must be a tuple"):
    config_keys._check_value("phases", "teacher", config_keys.rules()["phases"])


# Keys a tiny teacher run reads, with values from hostile to ordinary. Sizes stay small enough
# that an accepted run is seconds (a width of 1e9 is valid and would only be slow).
RUN_VALUES = {
    "data.validation_size": [0, -1, 1, 64, 10**6],
    "data.crop_padding": [-1, 0, 3, 40],
    "data.eval_batch_size": [0, 1, 7, 10**6],
    "data.shards": [0, 1, 3, 1000],
    "teacher.options.width": [math.nan, 0.0, 0.05, 0.3],
    "teacher.train.batch_size": [0, 1, 3, 10**6],
    "teacher.train.learning_rate": [math.inf, 0.0, 1e-9, 10.0],
    "teacher.train.log_every_steps": [0, 1, 10**6],
    "teacher.train.eval_every_steps": [-1, 0, 1],
    "teacher.train.checkpoint_every_steps": [0, 1, 10**6],
    "teacher.train.warmup_steps": [0, 1, 10**6]}


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(RUN_VALUES)).flatmap(
    lambda k: st.tuples(st.just(k), st.sampled_from(RUN_VALUES[k]))), min_size=1, max_size=3))
def test_drawn_configs_run_or_fail_in_one_line(fmnist_dir, overrides):
  cfg = make_tiny_config(train_limit=256, validation_size=64, test_limit=64, steps=3,
                         batch_size=32)
  cfg.data.data_dir = fmnist_dir
  cfg.data.eval_batch_size = 64
  for key, value in overrides:
    _set(cfg, key, value)
  with tempfile.TemporaryDirectory() as workdir:
    try:
      results = pipeline.run(cfg, os.path.join(workdir, "w"))
    except UserError as e:
      assert "\n" not in str(e), str(e)
      event(f"refused: {str(e)[:60]}")
      return
    event("ran")
    assert 0.0 <= results["teacher"]["test_accuracy"] <= 1.0, results["teacher"]
