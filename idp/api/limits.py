"""A per-service limit on calls to the API: a sliding window of ``api_rate_limit_per_minute``.

One service's bug or burst must not take the API (and the database behind it) from every other
service, so each client_id has its own window, counted by the generic sliding-window limiter
(:class:`idp.services.throttle.RateLimiter`, the one that limits sign-ins and reset emails;
security-requirements B06/C01 spirit applied to services). A refused call is not counted, so a
service that keeps calling still gets its full allowance each minute.

Over the limit the answer is 429 with ``Retry-After`` (RFC 6585 §4; RFC 9110 §10.2.3) as
problem details like every other API error (:mod:`idp.api.problems`). The first refusal in a
window is audited as ``api.rate_limited``; the rest are not, so a runaway client cannot flood
the audit log.
"""

from __future__ import annotations

from typing import Final

from flask import current_app

from idp.api.problems import ApiProblem
from idp.config import Settings
from idp.models import Service
from idp.services import audit
from idp.services.throttle import get_rate_limiter
from idp.services.transaction import transaction
from idp.store import get_store

WINDOW_SECONDS: Final = 60
_KEY: Final = "api:"
_AUDITED_KEY: Final = "api-limited:{}"


def count_call(service: Service) -> None:
    """Count one call by ``service``; raise a 429 problem if it is over its limit."""
    settings: Settings = current_app.extensions["settings"]
    limit = settings.api_rate_limit_per_minute
    decision = get_rate_limiter().hit(_KEY + service.client_id, limit, WINDOW_SECONDS)
    if decision.allowed:
        return
    wait = max(1, decision.retry_after)
    if get_store().set(_AUDITED_KEY.format(service.client_id), b"1", nx=True, ex=WINDOW_SECONDS):
        with transaction():
            audit.record(
                "api.rate_limited",
                actor=service.client_id,
                outcome=audit.DENIED,
                limit=limit,
                window_seconds=WINDOW_SECONDS,
            )
    raise ApiProblem(
        429,
        f"This service has made more than {limit} calls in a minute. "
        f"Try again in {wait} second{'' if wait == 1 else 's'}.",
        headers={"Retry-After": str(wait)},
    )
