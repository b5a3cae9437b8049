"""Helpers for the integration tests: who can sign in to what, and what the provider serves."""

from __future__ import annotations

import pytest
from flask import Flask
from idp.extensions import db
from idp.models import (
    AccessGrant,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationType,
    ServiceRole,
    User,
)
from idp.services import clients as service_registry
from sqlalchemy import select

#: What each end-to-end step needs from the provider, by Flask endpoint name.
PROVIDER_ENDPOINTS = {
    "oidc.authorize": "/authorize (the authorization endpoint)",
    "oidc.token": "/token (the token endpoint)",
    "oidc.userinfo": "/userinfo (the UserInfo endpoint)",
    "oidc_logout.end_session": "/logout (RP-Initiated Logout's end_session_endpoint)",
    "auth.mfa_app": "/sign-in/mfa/app (the authenticator-app step of sign-in)",
}


def missing_endpoints(app: Flask, *names: str) -> list[str]:
    return [PROVIDER_ENDPOINTS[n] for n in names if n not in app.view_functions]


def require_provider(app: Flask, *names: str) -> None:
    """Skip, naming what is missing, when the provider does not serve these endpoints yet.

    With no names: everything the single sign-out journey needs, back-channel delivery too.
    """
    missing = missing_endpoints(app, *(names or tuple(PROVIDER_ENDPOINTS)))
    if not names and "backchannel_logout" not in app.extensions:
        missing.append("back-channel logout delivery (idp/oidc/backchannel.py)")
    if missing:
        pytest.skip("the provider does not serve " + "; ".join(missing) + " yet")


def organisation(name: str = "Hill Top Primary School", urn: str = "100000") -> Organisation:
    org = Organisation(name=name, type=OrganisationType.ESTABLISHMENT, urn=urn)
    db.session.add(org)
    db.session.commit()
    return org


def give_access(user: User, org: Organisation, client_id: str, roles: list[str]) -> None:
    """Membership of ``org`` and access to the service with ``roles`` (as an approver would)."""
    if (
        db.session.scalar(
            select(Membership).where(
                Membership.user_id == user.id, Membership.organisation_id == org.id
            )
        )
        is None
    ):
        db.session.add(
            Membership(user_id=user.id, organisation_id=org.id, role=MembershipRole.MEMBER)
        )
    service = service_registry.get_service(client_id)
    assert service is not None
    grant = AccessGrant(user_id=user.id, organisation_id=org.id, service_id=service.id)
    grant.roles = list(
        db.session.scalars(
            select(ServiceRole).where(
                ServiceRole.service_id == service.id, ServiceRole.code.in_(roles)
            )
        )
    )
    db.session.add(grant)
    db.session.commit()
