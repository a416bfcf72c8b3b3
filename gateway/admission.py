"""What a call may cost before a service runs (SPEC 4.8): the rate limits, and the limit on
failed authentication.

Both are token buckets of ``gateway.ratelimit``, kept per client key
(``ratelimit.client_key`` of the resolved client address) or per node. Over a limit:
:class:`~gateway.errors.RateLimited` (``resource_exhausted`` + ``Retry-After``), counted in
``fleet_gateway_rate_limited_total{limit}``.

- ``auth``: Register, BeginAuthHandshake and CompleteAuthHandshake spend the client's
  bucket; ``heartbeat``: UploadHeartbeat spends its node's.
- ``auth_failures``: every refused credential (an unknown or invalid bearer, session or
  admin, and an api key BeginAuthHandshake refuses) spends a token of the client's own
  bucket (the auth limit's rate and burst). While it is empty, every call of that client
  that would look a credential up in the database is refused before the lookup, except a
  node whose session this replica's cache answers for (that costs nothing). Only
  refusals spend, so a client that authenticates never runs it down. No negative cache
  is kept: random tokens never repeat, and this bucket already caps what they cost at
  the auth rate.
"""

from __future__ import annotations

from typing import Any, NoReturn

import attrs

from gateway import errors
from gateway.metrics import Metrics
from gateway.principals import NodePrincipal
from gateway.ratelimit import RateLimits
from gateway.rpcs import Limit, Principal, Rpc

AUTH_FAILURES = "auth_failures"  # the failed-authentication limit's metric label


@attrs.frozen
class Admission:
    limits: RateLimits
    metrics: Metrics

    def before_credential_lookup(self, client: str) -> None:
        """Refuse a client whose failed-authentication bucket is empty, before any of its
        credentials is looked up."""
        wait = self.limits.auth_failures.wait(client)
        if wait is not None:
            self._refuse(AUTH_FAILURES, wait)

    def credential_refused(self, client: str) -> None:
        self.limits.auth_failures.take(client)

    def check_limit(self, rpc: Rpc[Any, Any], client: str, principal: Principal) -> None:
        """The procedure's own limit (the rate-limit step of SPEC 2's order)."""
        if rpc.limit is Limit.AUTH:
            wait = self.limits.auth.take(client)
        elif rpc.limit is Limit.HEARTBEAT and isinstance(principal, NodePrincipal):
            wait = self.limits.heartbeat.take(principal.fleet_node_id)
        else:
            return
        if wait is not None:
            self._refuse(rpc.limit.value, wait)

    def _refuse(self, limit: str, wait: float) -> NoReturn:
        self.metrics.rate_limited.labels(limit=limit).inc()
        raise errors.RateLimited("rate limit exceeded, retry later", retry_after_seconds=wait)
