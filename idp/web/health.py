"""Liveness and readiness probes for the load balancer and orchestrator.

``/healthz`` says the process answers. ``/readyz`` says whether it can do useful work: it
checks the database and the store and names whatever is down, with 503, so a load balancer
takes the instance out of rotation until the dependency returns (no restart needed).
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from idp.extensions import db
from idp.store import get_store

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # any failure means "not ready", whatever the driver raised
        db.session.rollback()
        log.warning("readiness: database unavailable: %s", type(error).__name__)
        checks["database"] = "unavailable"
    try:
        get_store().ping()
        checks["redis"] = "ok"
    except Exception as error:
        log.warning("readiness: redis unavailable: %s", type(error).__name__)
        checks["redis"] = "unavailable"
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        return jsonify(status="unavailable", down=down, checks=checks), 503
    return jsonify(status="ok", checks=checks)
