"""The one exception type for user mistakes.

Anything the user can get wrong (a path, a field, a value) raises ``BEPError`` with a
one-line message that names the bad input. The CLI prints that line and exits with
status 2; any other exception is a bug and keeps its traceback. ``BEPError`` is a
``ValueError``, so scikit-learn and other callers see bad input the way they expect.
"""


class BEPError(ValueError):
    """A user-facing error: bad input, bad file, bad option value."""
