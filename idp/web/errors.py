"""Error pages in GOV.UK style, and JSON errors for machine clients. Never a stack trace.

A database or Redis outage becomes a 503 "try again shortly" page: the request's unit of work
is rolled back, so nothing is half-written, and the next request reconnects by itself.
"""

from __future__ import annotations

import logging

import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, jsonify, render_template, request
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from idp.extensions import db

log = logging.getLogger(__name__)

_PAGES = {400, 403, 404, 405, 413, 429, 500, 503}


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes["text/html"]


def render_error(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    if wants_json():
        body = {"error": error.name.lower().replace(" ", "_"), "status": code}
        response = jsonify(body)
    elif request_ctx.url_adapter is None:
        # The request never got as far as URL matching (e.g. an untrusted Host header), so
        # the page layout cannot build its links: answer in plain text instead.
        response = Response(f"{code} {error.name}\n", mimetype="text/plain")
    else:
        template = f"errors/{code}.html" if code in _PAGES else "errors/generic.html"
        response = render_template(template, error=error)  # type: ignore[assignment]
    headers = {"Retry-After": "30"} if code == 503 else {}
    return response, code, headers


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        return render_error(error)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> ResponseReturnValue:
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(sqlalchemy.exc.InterfaceError)
    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def backing_service_down(error: Exception) -> ResponseReturnValue:
        log.error("backing service unavailable: %s", type(error).__name__)
        db.session.rollback()
        return render_error(ServiceUnavailable())

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        db.session.rollback()
        return render_error(InternalServerError())
