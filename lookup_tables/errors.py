"""Errors of the lookup tables; each is a HwnasError, so the CLI prints one line, exit 2."""
from core.errors import HwnasError


class LutError(HwnasError):
    """A lookup table cannot be built, read or used as asked."""


class TableFileError(LutError):
    """A table file that is missing, corrupt, truncated, or whose sidecar does not match."""


class DeviceMismatchError(LutError):
    """Tables (or a table and a space) from different devices, backends or dtypes."""


class MissingEntryError(LutError):
    """A prediction needs a measurement the table lacks and cannot estimate."""
