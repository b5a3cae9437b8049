"""Every API error as problem details (RFC 9457), JSON only, never a page or a stack trace.

The body is ``{"type": "about:blank", "title", "status", "detail", "code"}`` plus ``errors``
(``[{"field", "message"}]``) when the request's fields were wrong. ``type`` is ``about:blank``
(RFC 9457 §4.2.1: no meaning beyond the status code), so ``title`` is the status phrase;
``code`` is a stable machine-readable word (RFC 9457 §3.2 extension member), the RFC 6750
error code for token problems. Bearer-token errors also carry ``WWW-Authenticate``
(RFC 6750 §3): no error code when no token was sent (§3.1), ``invalid_request`` (400),
``invalid_token`` (401) or ``insufficient_scope`` (403, with the scope needed).

Routing errors (an unknown ``/api/`` path, a method a route does not take) happen before any
blueprint is chosen, so :func:`init_app` answers them from a ``before_app_request`` hook for
paths under the API's prefix. A database or Redis outage is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Final

import redis.exceptions
import sqlalchemy.exc
from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.http import HTTP_STATUS_CODES

from idp.extensions import db

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
REALM: Final = "secure-access-api"
#: RFC 6750 §3: error_description is limited to these characters.
_UNSAFE: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

_CODES: Final = {
    400: "invalid_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "server_error",
    503: "temporarily_unavailable",
}
_DETAILS: Final = {
    404: "There is nothing here.",
    405: "This address does not take that method.",
    413: "The request is too large.",
    415: "Send the body as application/json.",
    500: "Something went wrong on our side.",
    503: "The service is temporarily unavailable. Try again shortly.",
}


class ApiProblem(Exception):
    """Raised by views and helpers; the blueprint turns it into a problem response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.errors = list(errors)
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, object] = {
            "type": "about:blank",
            "title": HTTP_STATUS_CODES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors:
            body["errors"] = [{"field": f, "message": m} for f, m in self.errors]
        response = Response(json.dumps(body), status=self.status, mimetype=PROBLEM_JSON)
        response.headers.update(self.headers)
        return response


def bearer_problem(error: str | None, detail: str, *, scope: str | None = None) -> ApiProblem:
    """An RFC 6750 §3 error: status and ``WWW-Authenticate`` follow from the error code."""
    status = {None: 401, "invalid_request": 400, "invalid_token": 401}.get(error, 403)
    parts = [f'realm="{REALM}"']
    if error:
        parts += [f'error="{error}"', f'error_description="{_UNSAFE.sub("", detail)}"']
        if scope:
            parts.append(f'scope="{scope}"')
    return ApiProblem(
        status,
        detail,
        code=error or "unauthorized",
        headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)},
    )


def from_http(error: HTTPException) -> Response:
    code = error.code or 500
    headers = {"Retry-After": "30"} if code == 503 else {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    detail = _DETAILS.get(code) or "The request could not be handled."
    return ApiProblem(code, detail, headers=headers).response()


def init_app(bp: Blueprint, prefix: str) -> None:
    """Problem responses for everything that goes wrong under ``prefix``."""

    @bp.errorhandler(ApiProblem)
    def api_problem(error: ApiProblem) -> Response:
        return error.response()

    @bp.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        if error.code is not None and error.code < 400:
            return error  # e.g. a redirect to the canonical URL
        return from_http(error)

    @bp.errorhandler(sqlalchemy.exc.OperationalError)
    @bp.errorhandler(sqlalchemy.exc.InterfaceError)
    @bp.errorhandler(redis.exceptions.ConnectionError)
    @bp.errorhandler(redis.exceptions.TimeoutError)
    def backing_service_down(error: Exception) -> Response:
        log.error("backing service unavailable: %s", type(error).__name__)
        db.session.rollback()
        return ApiProblem(503, _DETAILS[503], headers={"Retry-After": "30"}).response()

    @bp.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error in the API")
        db.session.rollback()
        return ApiProblem(500, _DETAILS[500]).response()

    @bp.before_app_request
    def routing_errors() -> Response | None:
        error = request.routing_exception
        if error is None or not (request.path + "/").startswith(prefix + "/"):
            return None
        if isinstance(error, HTTPException) and (error.code or 500) >= 400:
            return from_http(error)
        return None
