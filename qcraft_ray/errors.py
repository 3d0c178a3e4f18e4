"""The errors that are the user's to fix, and the errors a single bad row raises.

:class:`UserError` is what the CLI reports as one clear message, without a traceback
(exit code 2): each kind below says what to fix and where. Each kind also keeps the
built-in class it was before (``ValueError`` for what was given, ``RuntimeError`` for the
state of the world), so code that catches those still does.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: the message names the key, file, field or path."""


class ConfigError(UserError, ValueError):
    """The configuration cannot be loaded; the message says which key and why."""


class InputError(UserError, ValueError):
    """The input cannot be read as configured; the message names the file and field."""


class OutputPathError(UserError, RuntimeError):
    """output.path cannot be used for this run; the message says why and what to do."""


class TableMismatchError(UserError, RuntimeError):
    """The Iceberg table exists but cannot take this run's files."""


class MissingLakeExtraError(UserError, RuntimeError):
    """An Iceberg setting is used without pyiceberg installed."""


class UnsupportedVersionError(UserError, RuntimeError):
    """An installed Ray or vLLM is outside the supported range, or lacks an API the job
    uses; the message names the version, the range and what to install."""


# What an engine raises for one bad request (a prompt it refuses): the row becomes an
# error row and the rest of its batch goes on. Anything else is fatal to the batch.
ROW_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError)
