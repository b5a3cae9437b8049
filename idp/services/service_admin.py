"""The helpdesk admin's changes to registered services: rotation and URI edits (issue 8).

Everything here goes through the service registry (:mod:`idp.services.clients`), which owns the
rules (G04 secrets, F01/E03 redirect URIs) and the audit events; this module only composes its
functions into the two things an admin does in the console:

- :func:`rotate_secret`: a new secret (returned once, never stored or logged in clear) and an
  expiry on every older secret, so the relying service can switch over without downtime
  (CONVENTIONS 3: every secret is a list).
- :func:`hold_for_showing` / :func:`take_for_showing`: the new secret waits, encrypted in the
  store under the admin's own SSO session, for the one page view that shows it (the rotation
  is a POST that redirects, so a browser refresh shows the page again instead of rotating
  again; G04 "shown once").
- :func:`update_uris`: new redirect, post-logout and back-channel logout URIs, validated by the
  registry exactly as at registration.

Only a helpdesk admin may call these: :func:`require_admin` is checked first (the console's
guard checks the role too; the service layer never relies on the page alone).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select

from idp.extensions import db
from idp.models import StaffRole, User, UserStatus
from idp.models.base import utcnow
from idp.models.service import Service
from idp.services import clients, crypto
from idp.store import Store

#: How long an old secret keeps working after a rotation, in days (the admin picks one).
OVERLAP_DAYS: Final[tuple[int, ...]] = (1, 7, 30)

#: How long a new secret waits for the page that shows it; unshown after that, it is gone.
SHOWING_SECONDS: Final = 300
_SHOWING_KEY: Final = "console:new_secret:{sid}:{client_id}"
_SHOWING_CONTEXT: Final = "new_client_secret"


class NotHelpdeskAdmin(PermissionError):
    """Only an active helpdesk admin manages services."""


def require_admin(actor: User) -> None:
    if actor.staff_role is not StaffRole.HELPDESK_ADMIN or actor.status is not UserStatus.ACTIVE:
        raise NotHelpdeskAdmin("Only a helpdesk admin can manage services")


def list_services() -> Sequence[Service]:
    return db.session.scalars(select(Service).order_by(Service.name, Service.client_id)).all()


def register(actor: User, **fields: Any) -> tuple[Service, str | None]:
    """Register a service for the admin (``fields`` as :func:`clients.register_service`) and
    return it with its new secret, shown once. Raises ServiceValidationError/ServiceExists."""
    require_admin(actor)
    return clients.register_service(actor=actor.sub, **fields)


def spec_of(service: Service) -> clients.ServiceSpec:
    """The registry's view of an existing service, for an update that changes a few fields."""
    values: dict[str, Any] = {}
    for spec_field in dataclasses.fields(clients.ServiceSpec):
        if spec_field.name == "roles":
            continue
        value = getattr(service, spec_field.name)
        values[spec_field.name] = tuple(value) if isinstance(value, list) else value
    roles = tuple(
        clients.RoleSpec(
            code=role.code,
            name=role.name,
            description=role.description,
            organisation_types=(
                tuple(role.organisation_types) if role.organisation_types is not None else None
            ),
        )
        for role in service.roles
    )
    return clients.ServiceSpec(**values, roles=roles)


def update_uris(
    actor: User,
    service: Service,
    *,
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str],
    backchannel_logout_uri: str | None,
) -> list[str]:
    """Replace the service's URIs; return what changed. Raises ServiceValidationError."""
    require_admin(actor)
    spec = dataclasses.replace(
        spec_of(service),
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        backchannel_logout_uri=backchannel_logout_uri or None,
    )
    return clients.update_service(service, spec, actor=actor.sub)


def rotate_secret(
    actor: User, service: Service, *, overlap_days: int, now: datetime | None = None
) -> str:
    """Add a new secret and return it (show it once); older secrets expire after the overlap.

    A secret that already expires sooner keeps its earlier expiry.
    """
    require_admin(actor)
    if overlap_days not in OVERLAP_DAYS:
        raise clients.ServiceValidationError(
            [f"Choose how long the old secret keeps working: {', '.join(map(str, OVERLAP_DAYS))}"]
        )
    at = now or utcnow()
    ends = at + timedelta(days=overlap_days)
    older = [row for row in service.secrets if row.expires_at is None or row.expires_at > ends]
    secret = clients.add_secret(service, label=f"rotated {at:%Y-%m-%d}", actor=actor.sub, now=at)
    for row in older:
        clients.expire_secret(service, row.id, ends, actor=actor.sub)
    return secret


def hold_for_showing(
    store: Store, sid: str, client_id: str, secret: str, *, overlap_days: int
) -> None:
    """Keep a new ``secret`` for one showing to the admin's browser session ``sid``.

    Encrypted (context ``"new_client_secret"``) and gone after :data:`SHOWING_SECONDS`, so the
    plain secret is never in a URL, a cookie, the logs or the database (G04). Bound to the SSO
    session: another admin, or another browser, cannot pick it up.
    """
    sealed = crypto.encrypt(
        json.dumps({"secret": secret, "overlap_days": overlap_days}).encode(),
        context=_SHOWING_CONTEXT,
    )
    store.set(_SHOWING_KEY.format(sid=sid, client_id=client_id), sealed, ex=SHOWING_SECONDS)


def take_for_showing(store: Store, sid: str, client_id: str) -> tuple[str, int] | None:
    """The held secret and its overlap in days, removed as it is read; None once shown.

    ``GETDEL`` is one atomic step, so two loads of the page at once cannot both show it.
    """
    raw = store.getdel(_SHOWING_KEY.format(sid=sid, client_id=client_id))
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    held = json.loads(crypto.decrypt(text, context=_SHOWING_CONTEXT))
    return str(held["secret"]), int(held["overlap_days"])
