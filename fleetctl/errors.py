"""What can go wrong in fleetctl, and the exit code of each (SPEC 5.9, 7).

Hierarchy (``__main__`` prints each as one ``fleetctl: ...`` line and exits with its code)::

    CtlError                    fleetctl's own refusals; ``str()`` is safe to show
    ├── UsageError              2:  a flag value out of range, a flag without the one it needs
    └── ConfigurationError      78: no admin token, a server URL that breaks the rule
                                    (``urlrule``), an unreadable --ca-file
    Unreachable                 69: network failure, timeout, a redirect (never followed),
                                    an answer that is not Connect (``client`` maps these)
    fleetwire ConnectError      the gateway's answer, by code (:func:`exit_code_for`)

Nothing here ever holds the admin token, and no message repeats the server URL's userinfo
(the URL rule refuses userinfo before anything prints the URL).
"""

from __future__ import annotations

from fleetwire.codes import Code, ConnectError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_REJECTED = 77
EXIT_CONFIG = 78

# The answers that say "try again later": exit 69, and what --follow rides out.
_UNAVAILABLE_CODES = frozenset({Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED})


class CtlError(Exception):
    """A refusal of fleetctl itself, before or instead of a call."""

    exit_code = EXIT_FAILURE


class UsageError(CtlError):
    exit_code = EXIT_USAGE


class ConfigurationError(CtlError):
    exit_code = EXIT_CONFIG


class Unreachable(Exception):
    """The gateway could not be reached, or answered something that is not Connect."""


Failure = CtlError | Unreachable | ConnectError


def exit_code_for(error: Failure) -> int:
    if isinstance(error, CtlError):
        return error.exit_code
    if isinstance(error, Unreachable) or error.code in _UNAVAILABLE_CODES:
        return EXIT_UNAVAILABLE
    if error.code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED):
        return EXIT_REJECTED
    if error.code is Code.INVALID_ARGUMENT:
        return EXIT_USAGE
    return EXIT_FAILURE


def is_transient(error: Failure) -> bool:
    """Worth another try later (what --follow retries): exactly the failures that exit 69."""
    return exit_code_for(error) == EXIT_UNAVAILABLE


def describe(error: Failure) -> str:
    """The one line fleetctl prints for ``error`` (after ``fleetctl: ``)."""
    if isinstance(error, ConnectError):
        return f"{error.code.value}: {error.message}" if error.message else error.code.value
    if isinstance(error, Unreachable):
        return f"unavailable: {error}"
    return str(error)
