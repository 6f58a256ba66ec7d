"""The one exception type for problems the user can fix (bad config, data, budget, checkpoint).

`main.py` turns it into a single line on stderr and a non-zero exit; everything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
  """A problem with the user's input: the message says what is wrong and how to fix it."""
