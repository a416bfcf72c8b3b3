"""Domain errors of the gateway.

Services raise these; the Connect adapter maps each class to one Connect code in
one place (``gateway.connect``). psycopg2 errors are mapped to these in
``gateway.store.pool`` and never escape it. Messages are shown to the caller verbatim, so
they must never hold a secret, SQL or exception text.

    DomainError
    ├── InvalidArgument       -> invalid_argument
    ├── Unauthenticated       -> unauthenticated
    ├── PermissionDenied      -> permission_denied
    ├── NotFound              -> not_found
    ├── FailedPrecondition    -> failed_precondition
    ├── RateLimited           -> resource_exhausted (+ Retry-After)
    ├── Unimplemented         -> unimplemented
    └── Unavailable           -> unavailable (+ Retry-After): the database is unreachable

Raised by the store (``gateway.store``) for its callers, never shown as such:

    DatabaseFault             an unexpected database error -> ``internal``, no details
    NameOrKeyInUse            Register hit the unique index of a live node's key or name
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds


class InvalidArgument(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class NotFound(DomainError):
    pass


class FailedPrecondition(DomainError):
    pass


class RateLimited(DomainError):
    pass


class Unimplemented(DomainError):
    pass


class Unavailable(DomainError):
    pass


class DatabaseFault(RuntimeError):
    """An unexpected database error; the boundary answers ``internal`` without details."""


class NameOrKeyInUse(Exception):
    """Register hit the unique index of a live node's key or name."""
