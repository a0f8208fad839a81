"""Typed errors shared by every hwnas package.

Every error a user can cause derives from :class:`HwnasError`; the CLI prints its message
as one line and exits with code 2. Messages name the offending key or value and, where
there is a closed set, the allowed values.
"""


class HwnasError(Exception):
    """Base of every error caused by bad input (config, files, arguments)."""


class ConfigError(HwnasError, ValueError):
    """An experiment config (or a section of it) is malformed."""


class ArchitectureError(HwnasError, ValueError):
    """An architecture is malformed or does not belong to a search space."""


class UnknownNameError(HwnasError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
