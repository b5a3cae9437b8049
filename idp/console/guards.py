"""Who may open a console page (security-requirements K01; DESIGN §1).

Every console view is wrapped by exactly one of these guards. They check, in order: a live
SSO session (else sign in and come back), an active account, the right staff role (else 403),
and for the helpdesk a session signed in with a phishing-resistant factor (WebAuthn: ``amr``
``hwk`` or ``swk``, RFC 8176) that carries the shorter staff timeouts (K01, E04: recorded
when a staff member signs in), else a page that explains how to get in.

Guards protect the door; the service layer still checks every change it is asked to make
(an approver may only change their own organisation's people, whatever URL they forge).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Final, TypeVar

from flask import abort, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp.auth.sso_cookie import current_sso_session
from idp.models import StaffRole, User, UserStatus
from idp.services import users

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

#: ``amr`` values that prove a WebAuthn authenticator was used (RFC 8176 §2).
WEBAUTHN_AMR: Final = frozenset({"hwk", "swk"})
HELPDESK_ROLES: Final = frozenset({StaffRole.HELPDESK, StaffRole.HELPDESK_ADMIN})


def _signed_in_user() -> User | ResponseReturnValue:
    sso = current_sso_session()
    if sso is None:
        return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
    user = users.find_by_sub(sso.sub)
    if user is None or user.status is not UserStatus.ACTIVE:
        abort(403)
    g.console_sso = sso
    g.console_user = user
    return user


def current_staff() -> User:
    """The signed-in person a guarded console view is serving."""
    user: User = g.console_user
    return user


def _helpdesk_guard(roles: frozenset[StaffRole]) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            user = _signed_in_user()
            if not isinstance(user, User):
                return user
            if user.staff_role not in roles:
                abort(403)
            # K01: a console session must carry the staff timeouts, which are written when a
            # staff member signs in; a session from before they became staff must sign in again.
            sso = g.console_sso
            if not WEBAUTHN_AMR & set(sso.amr) or sso.idle_limit is None:
                return (
                    render_template(
                        "console/webauthn_required.html",
                        title="Use your security key to open the helpdesk console",
                    ),
                    403,
                )
            return view(*args, **kwargs)

        guard = "helpdesk_admin" if roles == {StaffRole.HELPDESK_ADMIN} else "helpdesk"
        wrapper.console_guard = guard  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


#: Support actions: the ``helpdesk`` and ``helpdesk_admin`` roles.
helpdesk_required = _helpdesk_guard(HELPDESK_ROLES)
#: Services, organisations and helpdesk staff: the ``helpdesk_admin`` role only.
helpdesk_admin_required = _helpdesk_guard(frozenset({StaffRole.HELPDESK_ADMIN}))


def approver_required(view: F) -> F:
    """A signed-in, active person; which organisations they approve for is checked per page
    against the service layer (a forged organisation id gets 404, never another school)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        user = _signed_in_user()
        if not isinstance(user, User):
            return user
        return view(*args, **kwargs)

    wrapper.console_guard = "approver"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
