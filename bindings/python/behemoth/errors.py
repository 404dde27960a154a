"""Status codes of behemoth.h and the exceptions they become in Python."""
from __future__ import annotations

import enum

__all__ = [
    "Status",
    "BehemothError",
    "LibraryError",
    "InvalidArgumentError",
    "MisuseError",
    "FileIOError",
    "FormatError",
    "NumericError",
    "CancelledError",
    "BufferTooSmallError",
    "OutOfMemoryError",
    "InternalError",
    "error_class",
]


class Status(enum.IntEnum):
    """The int32 status codes of behemoth.h (BH_OK, BH_ERR_*, BH_STEP, BH_DONE)."""

    OK = 0
    ERR_INVALID = 1
    ERR_MISUSE = 2
    ERR_IO = 3
    ERR_FORMAT = 4
    ERR_NUMERIC = 5
    ERR_CANCELLED = 6
    ERR_BUFFER_TOO_SMALL = 7
    ERR_NOMEM = 8
    ERR_INTERNAL = 9
    STEP = 100
    DONE = 101

    @property
    def c_name(self) -> str:
        """The name of the constant in behemoth.h, e.g. "BH_ERR_INVALID"."""
        return "BH_" + self.name


#: Statuses that mean "the call succeeded" (the *_step calls return BH_STEP or BH_DONE).
SUCCESS = frozenset({Status.OK, Status.STEP, Status.DONE})


def status_name(status: int) -> str:
    """"BH_ERR_INVALID" for 1; "BH_UNKNOWN(42)" for a code the header does not define."""
    try:
        return Status(status).c_name
    except ValueError:
        return f"BH_UNKNOWN({status})"


class LibraryError(RuntimeError):
    """libbehemoth.so could not be found or loaded, has the wrong ABI version, or lacks a function."""


class BehemothError(Exception):
    """A libbehemoth call failed.

    Attributes:
        status: the int32 status code the call returned (see `Status`).
        status_name: its name in behemoth.h, e.g. "BH_ERR_INVALID".
        message: bh_last_error() right after the call: what was wrong and where.
        function: the C function that failed, when known.
    """

    def __init__(self, status: int, message: str, function: str | None = None):
        self.status = int(status)
        self.status_name = status_name(self.status)
        self.message = message
        self.function = function
        super().__init__(status, message)

    def __str__(self) -> str:
        return f"[{self.status_name}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status_name}, message={self.message!r})"


class InvalidArgumentError(BehemothError, ValueError):
    """BH_ERR_INVALID: a null pointer, bad size, malformed or out-of-range spec."""


class MisuseError(BehemothError):
    """BH_ERR_MISUSE: a call out of order, or on a handle in the wrong state (or closed)."""


class FileIOError(BehemothError):
    """BH_ERR_IO: a file or folder could not be read or written."""


class FormatError(BehemothError):
    """BH_ERR_FORMAT: a file is not of the expected format or version, or is damaged."""


class NumericError(BehemothError, ArithmeticError):
    """BH_ERR_NUMERIC: NaN or Inf loss, singular matrix."""


class CancelledError(BehemothError):
    """BH_ERR_CANCELLED: work was stopped before it finished."""


class BufferTooSmallError(BehemothError):
    """BH_ERR_BUFFER_TOO_SMALL: a caller buffer is smaller than the data."""


class OutOfMemoryError(BehemothError, MemoryError):
    """BH_ERR_NOMEM: an allocation failed."""


class InternalError(BehemothError):
    """BH_ERR_INTERNAL: a bug in the library; please report it with the message."""


_CLASSES = {
    Status.ERR_INVALID: InvalidArgumentError,
    Status.ERR_MISUSE: MisuseError,
    Status.ERR_IO: FileIOError,
    Status.ERR_FORMAT: FormatError,
    Status.ERR_NUMERIC: NumericError,
    Status.ERR_CANCELLED: CancelledError,
    Status.ERR_BUFFER_TOO_SMALL: BufferTooSmallError,
    Status.ERR_NOMEM: OutOfMemoryError,
    Status.ERR_INTERNAL: InternalError,
}


def error_class(status: int) -> type[BehemothError]:
    """The exception class for a status code (BehemothError itself for unknown codes)."""
    return _CLASSES.get(status, BehemothError)


def make_error(status: int, message: str, function: str | None = None) -> BehemothError:
    return error_class(status)(status, message, function)
