"""The one exception type for problems the user can fix (bad config, data, budget, checkpoint).

`main.py` turns it into a single line on stderr and a non-zero exit; everything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
  """A problem with the user's input: the message says what is wrong and how to fix it."""


def run_cli(fn, *args, needs: str, extra: str = "test"):
  """`fn(*args)` for a command-line tool: a UserError, or a package of the `extra` missing where
  the tool `needs` it, becomes one line and exit status 1."""
  try:
    return fn(*args)
  except ModuleNotFoundError as e:
    raise SystemExit(missing_extra(e, needs, extra))
  except UserError as e:
    raise SystemExit(f"error: {e}")


def missing_extra(e: ModuleNotFoundError, needs: str, extra: str = "test") -> str:
  """The one line for a package of an optional extra that is not installed."""
  setup = ", or bash scripts/setup.sh --test" if extra == "test" else ""
  return (f"error: {e.name} is needed {needs}; install the {extra} extra "
          f"(pip install -e '.[{extra}]'{setup})")
