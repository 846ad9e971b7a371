"""User-facing errors: one line that names the file, column or key and says what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NestedAEError(Exception):
    """An error caused by the user's input (config, data, run directory), not by a bug.

    The CLI prints ``str(error)`` on one line and exits with status 2; ``--debug`` shows the
    traceback.
    """


class ConfigError(NestedAEError):
    """A bad configuration key, type or value."""


class DataError(NestedAEError):
    """A bad data file, column or value."""


class RunDirError(NestedAEError):
    """A missing, incomplete or incompatible run directory or checkpoint."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'X'?)' for the closest of ``choices`` to ``name``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
