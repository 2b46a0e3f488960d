"""User-facing errors: mistakes in parameters, data or paths.

Anything raised as a ``UserError`` is reported by the command-line entry points as one clear
line (no traceback) and a non-zero exit. Programming errors stay ordinary exceptions.
"""


class UserError(Exception):
    """A mistake the user can fix: the message says what and where."""


class ConfigError(UserError):
    """A parameter file or override is wrong (unknown key, bad type, out of range, missing)."""


class DatasetError(UserError):
    """A dataset folder or file is missing, unreadable or inconsistent."""
