"""User-facing errors.

Anything the *user* can fix (a config key, a path, a corrupt file) raises :class:`UserError` with a message
that names the offending field or file and says how to fix it. The CLI prints it as one line on stderr and
exits with status 2. Tracebacks are reserved for our own bugs.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input. ``str(err)`` is a single line naming the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        message = str(message)
        if "Original Traceback" in message:
            # Re-raised from a DataLoader worker: keep only the original error's own message, which is the
            # last line of the worker's traceback ("pkg.mod.DataError: <message>").
            last = message.rstrip().splitlines()[-1]
            message = last.split(": ", 1)[1] if ": " in last else last
        # Keep the message on one line: the CLI contract is "one clear line".
        super().__init__(" ".join(message.split()))


class ConfigError(UserError):
    """Invalid configuration: unknown key, wrong type, bad value, unreadable YAML."""


class DataError(UserError):
    """Invalid or missing data: a missing path, a corrupt image, an empty data set."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or not a torchrepro/Lightning checkpoint."""


class NonFiniteLossError(UserError):
    """The training loss became NaN or Inf; the run stops and keeps its last good checkpoint."""
