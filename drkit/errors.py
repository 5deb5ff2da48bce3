"""Errors drkit reports to its user, each mapped to an exit code.

Exit codes: 0 success; 1 a failure (or findings from verify); 2 bad input; 3 state locked.
Every error renders as one line: what went wrong, where, and (when there is one) a hint.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_LOCKED = 3


class DrkitError(Exception):
    """A failure drkit explains itself; never shown as a traceback."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class UserInputError(DrkitError):
    """Configuration, flags or a state file that drkit refuses before any AWS call."""

    exit_code = EXIT_BAD_INPUT


class StateLockedError(DrkitError):
    exit_code = EXIT_LOCKED


class AwsCallError(DrkitError):
    """An AWS call that failed after drkit's retries."""

    def __init__(self, service: str, region: str, operation: str, code: str, message: str) -> None:
        super().__init__(f"{service} {operation} in {region} failed: {code}: {message}")
        self.service = service
        self.region = region
        self.operation = operation
        self.code = code


class EndpointUnreachableError(DrkitError):
    """AWS (or the --endpoint-url) could not be reached at all: one line, not one per step."""


class AmbiguousResourceError(DrkitError):
    """More than one AWS resource carries the tags of a resource drkit expects once."""


class WaitTimeoutError(DrkitError):
    pass


class InterruptedRun(DrkitError):
    """The user interrupted the run (Ctrl-C); steps stop between changes and during waits."""

    exit_code = 130


class RefusedChangeError(DrkitError):
    """A difference drkit will not repair in place (it would need a replacement)."""


class StateLockLostError(StateLockedError):
    """This run's lock was broken (and maybe taken): it must not write the state again."""


class StateConflictError(StateLockedError):
    """A compare-and-swap write of the state failed: another run changed it since it was read."""


class DegradedModeError(DrkitError):
    """The state's home region is unreachable: only reads (from the replica) are possible."""
