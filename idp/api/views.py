"""The API's routes under ``/api/v1``: each checks the token's scope, calls one service, answers.

The contract is ``idp/api/openapi.json`` (OpenAPI 3.1; package data, so every install has
it), served as it is at ``/api/v1/openapi.json``; ``docs/api.md`` explains it with examples.
Every response carries ``Cache-Control: no-store`` (it is about people, and RFC 6750 §5.3
/ G06 ask for it).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Final

import sqlalchemy.exc
from flask import Blueprint, Response, jsonify, url_for
from flask.typing import ResponseReturnValue

from idp.api import problems
from idp.api.auth import require_scope
from idp.api.problems import ApiProblem
from idp.api.schemas import InvitationBody, json_body, page_args
from idp.extensions import db
from idp.models import Service
from idp.services import service_api
from idp.services.transaction import transaction

log = logging.getLogger(__name__)

PREFIX: Final = "/api/v1"
OPENAPI_DOCUMENT: Final = Path(__file__).with_name("openapi.json")
NOT_FOUND: Final = "There is no such person or organisation for this service."

bp = Blueprint("api", __name__, url_prefix=PREFIX)
problems.init_app(bp, "/api")


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@cache
def _openapi_document() -> bytes:
    return OPENAPI_DOCUMENT.read_bytes()


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document, byte for byte the file in ``docs/`` (public, like discovery)."""
    return Response(_openapi_document(), mimetype="application/json")


@bp.get("/users/<sub>")
@require_scope("users:read")
def get_user(service: Service, sub: str) -> ResponseReturnValue:
    try:
        view = service_api.get_user(service, sub)
    except service_api.NotFound:
        raise ApiProblem(404, NOT_FOUND) from None
    return jsonify(view.as_json())


@bp.get("/organisations/<organisation_id>/users")
@require_scope("users:read")
def organisation_users(service: Service, organisation_id: str) -> ResponseReturnValue:
    page, per_page = page_args()
    try:
        found = service_api.organisation_users(
            service, organisation_id, page=page, per_page=per_page
        )
    except service_api.NotFound:
        raise ApiProblem(404, NOT_FOUND) from None
    return jsonify(found.as_json())


@bp.post("/invitations")
@require_scope("users:invite")
def invite(service: Service) -> ResponseReturnValue:
    body = json_body(InvitationBody)
    for attempt in (1, 2):
        try:
            with transaction():
                outcome = service_api.invite(
                    service,
                    email=body.email,
                    given_name=body.given_name,
                    family_name=body.family_name,
                    organisation_id=body.organisation_id,
                    roles=body.roles,
                )
            break
        except sqlalchemy.exc.IntegrityError:
            # The same invitation arrived twice at once and the other one won the race: run
            # again, and this time find what it created (idempotence holds under concurrency).
            db.session.rollback()
            if attempt == 2:
                raise
        except service_api.InvalidInvitation as error:
            raise ApiProblem(400, "The invitation is not valid.", errors=error.problems) from None
        except service_api.NotFound:
            raise ApiProblem(
                404, "There is no such organisation.", errors=[("organisation_id", "Not found")]
            ) from None
        except service_api.AccountDeactivated:
            raise ApiProblem(
                409,
                "This person's account has been deactivated. "
                "Ask the DfE helpdesk to reactivate it.",
                errors=[("email", "The account is deactivated")],
            ) from None
    response = jsonify(outcome.user.as_json())
    response.status_code = 201 if outcome.account_created else 200
    response.headers["Location"] = url_for("api.get_user", sub=outcome.user.person.sub)
    return response
