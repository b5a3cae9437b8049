"""Who is calling the API: a service, proven by its client-credentials access token.

RFC 6750 §2.1: the token travels in the ``Authorization: Bearer`` header only (not in the
query, §2.3, which leaks into logs; not in a form body, since API bodies are JSON). It must be
a live access token of ours, checked exactly as UserInfo and introspection check one
(:func:`idp.oidc.tokens.verify_access_token`: size cap before parsing, our keys, an explicit
one-algorithm allow-list, ``typ: at+jwt``, ``iss``, ``exp`` and the revocation list; L02, G07),
and then:

- it is a *service's* token about itself (RFC 9068 §2.2, client credentials): ``sub`` equals
  ``client_id`` and the audience is that client (``aud`` = client_id, as the token endpoint
  mints it). A token issued to a person, or meant for another audience, is ``invalid_token``.
- the service is still registered, enabled and allowed the client credentials grant;
- the token carries the scope the route needs *and* the service is still registered for it
  (a scope withdrawn in the registry stops working at once): else ``insufficient_scope``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Final, TypeVar

from flask import request

from idp.api.limits import count_call
from idp.api.problems import bearer_problem
from idp.models import Service
from idp.oidc.tokens import MAX_TOKEN_LENGTH, InvalidAccessToken, verify_access_token
from idp.services.clients import find_service

F = TypeVar("F", bound=Callable[..., Any])

#: Longer ``Authorization`` headers are refused before anything parses them (L02).
MAX_AUTHORIZATION_HEADER: Final = MAX_TOKEN_LENGTH + 64


def bearer_token() -> str:
    header = request.headers.get("Authorization")
    if header is None:
        raise bearer_problem(None, "Send an access token in the Authorization header.")
    if len(header) > MAX_AUTHORIZATION_HEADER:
        raise bearer_problem("invalid_request", "The Authorization header is too large.")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        # RFC 6750 §3.1: no bearer credentials at all, so no error code.
        raise bearer_problem(None, "Send an access token with the Bearer scheme.")
    token = value.strip()
    if not token:
        raise bearer_problem("invalid_request", "The bearer token is empty.")
    return token


def _audience_is(claims: dict[str, Any], client_id: str) -> bool:
    aud = claims.get("aud")
    return aud == client_id or aud == [client_id]


def calling_service(scope: str) -> Service:
    """The service the request's token belongs to, if it may use ``scope`` (else a problem)."""
    try:
        claims = verify_access_token(bearer_token())
    except InvalidAccessToken as error:
        raise bearer_problem("invalid_token", error.reason) from error
    client_id = claims["client_id"]
    if claims["sub"] != client_id or not _audience_is(claims, client_id):
        raise bearer_problem(
            "invalid_token", "The access token is not a service's client credentials token."
        )
    service = find_service(client_id)
    if service is None or "client_credentials" not in service.grant_types:
        raise bearer_problem("invalid_token", "The service is not registered for this API.")
    if scope not in claims["scope"].split() or scope not in service.allowed_scopes:
        raise bearer_problem(
            "insufficient_scope", f"The access token lacks the {scope} scope.", scope=scope
        )
    return service


def require_scope(scope: str) -> Callable[[F], F]:
    """Decorate a view: it is called with the calling :class:`Service` as first argument,
    once the call is counted against the service's rate limit (:mod:`idp.api.limits`)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            service = calling_service(scope)
            count_call(service)
            return view(service, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
