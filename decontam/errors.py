"""Errors the library raises. Each carries the wrong value in its message and a hint with the fix.

The CLI turns them into ``Error: ...`` / ``Hint: ...`` on stderr and exit code 2.
"""

from __future__ import annotations


class DecontamError(Exception):
    """Base error: ``message`` says what is wrong and where, ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"

    def __reduce__(self):  # raised in a worker process, it reaches the caller with its hint
        return type(self), (self.message, self.hint)


class InputError(DecontamError):
    """A corpus or test-set input cannot be read or understood."""


class UnreadableInputError(InputError):
    """A corpus file none of whose rows could be read (a format decontam does not read, another
    encoding). ``result``: the scan of everything else, so that a long scan loses nothing."""

    def __init__(self, message: str, hint: str | None = None, result=None):
        super().__init__(message, hint)
        self.result = result


class IndexFormatError(DecontamError):
    """An index folder is missing, from another format version, or fails its checksums."""


class ParameterError(DecontamError):
    """An option has a value the library cannot use."""


class WorkerError(DecontamError):
    """A worker process of a parallel scan died (killed, out of memory) or could not start."""
