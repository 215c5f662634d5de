"""The exceptions for what the user can act on, and the exit status of each.

Anything the user can get wrong (a path, a field, a value) raises ``BEPError`` with a
one-line message that names the bad input; the CLI prints that line and exits with the
error's status. Any other exception is a bug and keeps its traceback. ``BEPError`` is a
``ValueError``, so scikit-learn and other callers see bad input the way they expect.

Exit statuses of ``bep-mcu`` (README "Exit status"):
    0  success
    1  a check ran and failed (not bit-exact, a self-test mismatch)
    2  bad input: options, files, values (BEPError)
    3  it does not fit: a network on a board or a budget, a run in this machine's memory
    4  the board: its port does not open, it does not answer, refuses a request, was reset
"""


class BEPError(ValueError):
    """A user-facing error: bad input, bad file, bad option value."""

    exit_status = 2


class DoesNotFit(BEPError):
    """A network that does not fit a board or a budget, or a run this machine's memory."""

    exit_status = 3


class BoardError(BEPError):
    """The board or its port: does not open, does not answer, refuses, was reset."""

    exit_status = 4
