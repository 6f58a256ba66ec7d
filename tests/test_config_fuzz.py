"""Property test of the config validation: overrides drawn from the declared key table (every
numeric key of config.RANGES and config.TRAIN_RANGES, in every training section), with hostile
values (NaN, inf, 0, negative, huge, fractional), either pass `validate` inside the declared range
or end in a `UserError` of one line naming the key; never another exception."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from compactkd_jax import config as config_lib
from compactkd_jax.errors import UserError

SECTIONS = ("teacher", "distill", "refine", "finetune", "baselines")
KEYS = [(key, low, strict, high) for key, low, strict, high in config_lib.RANGES] + [
    (f"{section}.train.{key}", low, strict, high)
    for section in SECTIONS for key, low, strict, high in config_lib.TRAIN_RANGES]
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


def _inside(value, low, strict, high) -> bool:
  return (math.isfinite(value) and (value > low if strict else value >= low) and
          (high is None or value < high))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), HOSTILE), min_size=1, max_size=3))
def test_validate_accepts_only_declared_ranges(overrides):
  cfg = config_lib.default_config()
  applied = [(k, v) for (k, *_), v in overrides if _set(cfg, k, v)]
  ranges = {k: (low, strict, high) for k, low, strict, high in KEYS}
  effective = {}
  for k, _ in applied:  # the last value of a key counts
    node = cfg
    for part in k.split("."):
      node = node[part]
    effective[k] = node
  outside = [k for k, v in effective.items() if not _inside(v, *ranges[k])]
  try:
    config_lib.validate(cfg)
  except UserError as e:
    message = str(e)
    assert "\n" not in message
    assert outside or "needs epochs > 0 or steps > 0" in message, message
    if outside:
      assert any(f"config.{k}" in message or k.split(".")[0] in message for k in outside), message
    return
  assert not outside, f"accepted out-of-range values: {[(k, effective[k]) for k in outside]}"


@pytest.mark.parametrize("key", ["seed", "teacher.options.dropout", "finetune.train.momentum"])
def test_new_bounds(key):
  cfg = config_lib.default_config()
  _set(cfg, key, -1 if key == "seed" else 1.0)
  with pytest.raises(UserError, match=key.replace(".", r"\.")):
    config_lib.validate(cfg)
