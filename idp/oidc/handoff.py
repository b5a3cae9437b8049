"""An authorization request waiting while the browser does something else (issue 4, 7, F11).

When the person must sign in (again), add a second factor, choose an organisation or answer
the consent question, :mod:`idp.oidc.endpoints` stores the validated request here for
:data:`HANDOFF_TTL_SECONDS` under a random id, and the page that did the work sends the browser
back to ``/authorize/resume/<id>``, where the request is validated again from scratch. The
steps (:mod:`idp.oidc.choose_organisation`, :mod:`idp.oidc.consent`) read and update the
hand-off through this module. :func:`error_page` is the page every one of them shows when the
request cannot go back to the service (unknown client, untrusted return address, expired).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Final

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.services.sso_sessions import SsoSession
from idp.store import get_store

#: How long a request waits for the person to sign in.
HANDOFF_TTL_SECONDS: Final = 600
_HANDOFF_KEY: Final = "oidc:authz-request:{}"
_HANDOFF_ID: Final = re.compile(r"[A-Za-z0-9_-]{22}")


@dataclass
class HandOff:
    """An authorization request waiting for the person to sign in (or add a factor)."""

    id: str
    params: dict[str, list[str]]
    #: The session when the browser was sent to sign in (None: there was none).
    prior_sid: str | None
    prior_auth_time: int | None
    #: The session that has already satisfied prompt=login/max_age for this request.
    login_sid: str | None = None
    #: Whether the browser was already sent to add a second factor.
    step_up: bool = False
    #: The organisation chosen for this request on the choose-organisation page.
    organisation_id: str | None = None
    #: The scopes the consent page asks about (set when the browser is sent there).
    consent_scopes: list[str] | None = None
    #: The ``sub`` of the person who allowed this request on the consent page just now.
    consented_by: str | None = None
    #: The ``sub`` of the person who chose "Do not allow" for this request.
    refused_by: str | None = None

    def reauthenticated(self, sso: SsoSession | None) -> bool:
        if sso is None:
            return False
        return (
            sso.sid == self.login_sid
            or sso.sid != self.prior_sid
            or self.prior_auth_time is None
            or sso.auth_time > self.prior_auth_time
        )


def save_handoff(handoff: HandOff) -> None:
    get_store().set(
        _HANDOFF_KEY.format(handoff.id), json.dumps(asdict(handoff)), ex=HANDOFF_TTL_SECONDS
    )


def load_handoff(handoff_id: str) -> HandOff | None:
    if not _HANDOFF_ID.fullmatch(handoff_id):
        return None
    raw = get_store().get(_HANDOFF_KEY.format(handoff_id))
    return HandOff(**json.loads(raw)) if raw is not None else None


def forget_handoff(handoff: HandOff) -> None:
    """The request was answered: it cannot be resumed again."""
    get_store().delete(_HANDOFF_KEY.format(handoff.id))


_PROBLEMS: Final = {
    "client": "The service that sent you here is not registered with Secure Access.",
    "redirect": "The service that sent you here gave an address to return to that is not "
    "registered for it, so we cannot send you back.",
    "expired": "Your sign-in request has expired.",
}


def error_page(problem: str) -> ResponseReturnValue:
    """Our own page, never a redirect: the return address could not be trusted (F01, V2)."""
    return render_template("oidc/error.html", problem=_PROBLEMS[problem]), 400
