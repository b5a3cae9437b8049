"""Consent: what a person has allowed a service that is not first-party to know (F11).

Security requirement F11 (ASVS 10.7.1-10.7.3): "The consent step is shown for any client not
marked first-party. Users can view and revoke grants." Services registered as first-party are
trusted by policy and never ask. For the others the authorization endpoint
(:mod:`idp.oidc.endpoints`) asks on :mod:`idp.oidc.consent` whenever a request wants a scope
the person has not allowed yet (or ``prompt=consent``), and the account area
(:mod:`idp.account.allowed_services`) lists what was allowed and withdraws it.

A consent is per person and service and holds every scope allowed so far: allowing more widens
it (a union), so a service asking for ``email`` today and ``profile`` tomorrow asks only about
``profile`` tomorrow. Withdrawing deletes it and announces
:data:`idp.services.events.consent_withdrawn`, on which the OIDC room revokes the person's
refresh tokens at that service, so the service cannot keep reading (G05 Also, ASVS 10.7.3).
Each grant, refusal and withdrawal is audited (K03): ``consent.granted``, ``consent.refused``,
``consent.withdrawn``.

Like every service here these add and flush inside the caller's unit of work (CONVENTIONS 8).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from idp.extensions import db
from idp.models import Consent, Service, User
from idp.models.base import utcnow
from idp.services import audit, events
from idp.services.transaction import insert_or_nothing

#: What allowing each scope lets a service do, in plain English, completing "It will be able
#: to ..." (``{service}`` is the service's name). The claims behind each are in
#: :mod:`idp.oidc.claims`; ``offline_access`` is a refresh token that outlives the sign-in.
SCOPE_ABILITIES: Final[dict[str, str]] = {
    "openid": "know it is you, from a reference number for your account",
    "profile": "see your name",
    "email": "see your email address",
    "organisation": (
        "see your organisation details: the organisations you belong to, their names and "
        "reference numbers, and which one you are signing in for"
    ),
    "roles": "see your roles in {service}",
    "offline_access": "keep you signed in to {service} when you are not using it",
}


def abilities(scopes: Iterable[str], service_name: str) -> list[str]:
    """What ``scopes`` let the service called ``service_name`` do, in the table's order."""
    wanted = set(scopes)
    return [
        text.format(service=service_name)
        for scope, text in SCOPE_ABILITIES.items()
        if scope in wanted
    ]


def granted_scopes(user: User, service: Service) -> frozenset[str]:
    """Every scope ``user`` has allowed ``service`` (empty: never allowed, or withdrawn)."""
    scopes = db.session.scalar(
        select(Consent.scopes).where(Consent.user_id == user.id, Consent.service_id == service.id)
    )
    return frozenset(scopes or ())


def grant(user: User, service: Service, scopes: Sequence[str]) -> Consent:
    """Record that ``user`` allows ``service`` ``scopes``, on top of what they allowed before.

    Two "Allow" clicks at once (two tabs) must not fail on the one-row-per-pair constraint,
    nor lose either's scopes: the row is created with ``INSERT ... ON CONFLICT DO NOTHING``
    (:func:`idp.services.transaction.insert_or_nothing`), then read ``FOR UPDATE``
    (PostgreSQL; SQLite serialises writers anyway) and widened.
    """
    now = utcnow()
    db.session.execute(
        insert_or_nothing(Consent, Consent.user_id, Consent.service_id).values(
            user_id=user.id, service_id=service.id, scopes=[], created_at=now, updated_at=now
        )
    )
    row = db.session.scalars(
        select(Consent)
        .where(Consent.user_id == user.id, Consent.service_id == service.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    before = set(row.scopes)
    row.scopes = sorted(before | set(scopes))
    row.updated_at = now  # "allowed on": the last time they said yes
    db.session.flush()
    audit.record(
        "consent.granted",
        actor=user.sub,
        target=service.client_id,
        target_type="service",
        scopes=sorted(set(scopes)),
        added=sorted(set(scopes) - before),
    )
    return row


def record_refusal(user: User, service: Service, scopes: Sequence[str]) -> None:
    """Audit that ``user`` chose "Do not allow" for ``service`` (nothing else changes)."""
    audit.record(
        "consent.refused",
        actor=user.sub,
        target=service.client_id,
        target_type="service",
        outcome=audit.DENIED,
        scopes=sorted(set(scopes)),
    )


def withdraw(user: User, service: Service) -> bool:
    """Withdraw ``user``'s consent to ``service``; False if there was none to withdraw.

    Announces :data:`~idp.services.events.consent_withdrawn` in the same unit of work, so the
    person's refresh tokens at the service are revoked with it, or neither happens.
    """
    result = db.session.execute(
        delete(Consent)
        .where(Consent.user_id == user.id, Consent.service_id == service.id)
        .returning(Consent.scopes)
    )
    removed = result.scalar_one_or_none()
    if removed is None:
        return False
    events.consent_withdrawn.send(user.sub, user_id=user.id, service_id=service.id)
    audit.record(
        "consent.withdrawn",
        actor=user.sub,
        target=service.client_id,
        target_type="service",
        scopes=sorted(removed),
    )
    return True


def consents_of(user: User) -> list[Consent]:
    """What ``user`` has allowed, for services that still ask (not first-party), by name.

    A service since made first-party is left out: it no longer asks, and may see what its
    scopes release whatever the person allowed (first-party services are trusted by policy).
    """
    return list(
        db.session.scalars(
            select(Consent)
            .join(Consent.service)
            .where(Consent.user_id == user.id, Service.first_party.is_(False))
            .options(selectinload(Consent.service))
            .order_by(Service.name)
        )
    )
