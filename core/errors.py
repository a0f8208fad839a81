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


def one_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (third-party errors span many lines), or
    its type when it has none; ``with_type`` prefixes the type (``TypeError: ...``)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if with_type:
        return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return first or type(exc).__name__
