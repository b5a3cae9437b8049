"""Writing one batch of the Authentix import: a few ``executemany`` statements and the audit trail.

Split from :mod:`idp.services.authentix_import_plan` (which decides what a batch changes) so
each module has one job. Everything here runs inside the caller's unit of work
(:func:`idp.services.transaction.transaction`), so a batch is written whole or not at all.

The writes are Core statements, not ORM objects: for 100,000 rows an ORM object per row (and a
flush per audit event) costs more than everything else in the import. The rules are still the
services' rules: the planner checks roles with :func:`idp.services.access.roles_allowed`, the
invitation is :func:`idp.services.invitations.invite` for a batch (single-use link, only its
hash stored, email queued in the outbox), and the audit events are the ones the console records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from flask import g, has_request_context, request
from sqlalchemy import Connection, Table, and_, bindparam, insert, update

from idp.config import Settings
from idp.models import (
    AccessGrant,
    AccountToken,
    AuditEvent,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationStatus,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
    TokenPurpose,
    User,
    UserStatus,
)
from idp.models.base import utcnow
from idp.models.service import access_grant_roles
from idp.services import audit, crypto, outbox
from idp.services.links import public_url
from idp.services.mail import templates as email_templates

#: Every per-change audit event says where it came from.
VIA = "authentix_import"


@dataclass(slots=True)
class Org:
    id: int | None  # None until inserted (or forever, in a dry run)
    public_id: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    id: int
    client_id: str
    name: str
    role_ids: dict[str, int]  # code -> service_roles.id
    role_names: dict[str, str]
    allowed: dict[str, frozenset[str]]  # organisation type -> role codes it may hold


@dataclass(slots=True)
class Person:
    id: int | None
    sub: str
    status: UserStatus
    new: bool = False
    memberships: dict[int | str, tuple[int, MembershipRole]] = field(default_factory=dict)
    grants: dict[tuple[int | str, int], tuple[int, set[int]]] = field(default_factory=dict)
    live_invitation: bool = False


@dataclass(slots=True)
class Batch:
    """The writes one batch of rows needs, keyed by email and URN until ids exist."""

    orgs: list[str] = field(default_factory=list)  # URNs to create
    org_lines: set[int] = field(default_factory=set)  # the rows that create them
    users: list[tuple[str, str, str, str]] = field(default_factory=list)  # sub, email, names
    memberships: list[tuple[str, str, MembershipRole]] = field(default_factory=list)
    promotions: list[tuple[int, str, str]] = field(default_factory=list)  # membership, sub, urn
    grants: list[tuple[str, str, int, list[int]]] = field(default_factory=list)
    grant_roles: list[tuple[int, str, str, int, list[int], list[int]]] = field(
        default_factory=list
    )  # grant id, sub, urn, service id, previous role ids, added role ids
    invitations: list[tuple[str, str]] = field(default_factory=list)  # email, organisation name


class Writer:
    """Writes batches for one import run; knows the run's organisations and services."""

    def __init__(
        self,
        *,
        orgs: dict[str, Org],
        services: dict[int, ServiceInfo],
        role_codes: dict[int, str],
        settings: Settings,
        actor: str,
    ) -> None:
        self.orgs = orgs
        self.service_by_id = services
        self.role_codes = role_codes
        self.settings = settings
        self.actor = actor

    def write(self, conn: Connection, batch: Batch, people: dict[str, Person]) -> None:
        """Write one batch's changes with a few executemany statements, and their audit trail."""
        now = utcnow()
        trail = Trail(self.actor, now)
        if batch.orgs:
            for id_, urn in conn.execute(
                insert(_ORGS).returning(_ORGS.c.id, _ORGS.c.urn),
                [self._org_values(urn, now) for urn in batch.orgs],
            ):
                self.orgs[urn].id = id_
            for urn in batch.orgs:
                org = self.orgs[urn]
                trail.add(
                    "organisation.created", org.public_id, "organisation", urn=urn, name=org.name
                )
        user_ids = {email: p.id for email, p in people.items() if p.id is not None}
        subs = {email: p.sub for email, p in people.items()}
        if batch.users:
            for id_, email in conn.execute(
                insert(_USERS).returning(_USERS.c.id, _USERS.c.email),
                [
                    {
                        "sub": sub,
                        "email": email,
                        "given_name": given,
                        "family_name": family,
                        "status": UserStatus.INVITED.value,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for sub, email, given, family in batch.users
                ],
            ):
                user_ids[email] = id_
            for sub, *_ in batch.users:
                trail.add("user.created", sub, "user", staff_role=None)
        if batch.memberships:
            conn.execute(
                insert(_MEMBERSHIPS),
                [
                    {
                        "user_id": user_ids[email],
                        "organisation_id": self.orgs[urn].id,
                        "role": role.value,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for email, urn, role in batch.memberships
                ],
            )
            for email, urn, role in batch.memberships:
                trail.add(
                    "membership.added",
                    subs[email],
                    "user",
                    organisation=self.orgs[urn].public_id,
                    role=str(role),
                )
        if batch.promotions:
            conn.execute(
                update(_MEMBERSHIPS)
                .where(_MEMBERSHIPS.c.id == bindparam("b_id"))
                .values(role=MembershipRole.APPROVER.value, updated_at=now),
                [{"b_id": id_} for id_, _, _ in batch.promotions],
            )
            for _, sub, urn in batch.promotions:
                trail.add(
                    "membership.role_changed",
                    sub,
                    "user",
                    organisation=self.orgs[urn].public_id,
                    previous_role=str(MembershipRole.MEMBER),
                    role=str(MembershipRole.APPROVER),
                )
        self._write_grants(conn, batch, user_ids, subs, trail, now)
        self._write_invitations(conn, batch, user_ids, subs, trail, now)
        trail.flush(conn)

    def _org_values(self, urn: str, now: datetime) -> dict[str, Any]:
        org = self.orgs[urn]
        return {
            "public_id": org.public_id,
            "type": org.type,
            "name": org.name,
            "urn": urn,
            "status": OrganisationStatus.OPEN.value,
            "created_at": now,
            "updated_at": now,
        }

    def _write_grants(
        self,
        conn: Connection,
        batch: Batch,
        user_ids: dict[str, int],
        subs: dict[str, str],
        trail: Trail,
        now: datetime,
    ) -> None:
        links: list[dict[str, int]] = []
        if batch.grants:
            wanted = {}
            for email, urn, service_id, role_ids in batch.grants:
                key = (user_ids[email], self.orgs[urn].id, service_id)
                wanted[key] = (email, urn, role_ids)
            for id_, user_id, org_id, service_id in conn.execute(
                insert(_GRANTS).returning(
                    _GRANTS.c.id,
                    _GRANTS.c.user_id,
                    _GRANTS.c.organisation_id,
                    _GRANTS.c.service_id,
                ),
                [
                    {
                        "user_id": u,
                        "organisation_id": o,
                        "service_id": s,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for u, o, s in wanted
                ],
            ):
                email, urn, role_ids = wanted[(user_id, org_id, service_id)]
                links += [{"access_grant_id": id_, "service_role_id": r} for r in role_ids]
                trail.add(
                    "access.granted",
                    subs[email],
                    "user",
                    organisation=self.orgs[urn].public_id,
                    service=self.service_by_id[service_id].client_id,
                    roles=self._codes(role_ids),
                    previous_roles=[],
                )
        if batch.grant_roles:
            conn.execute(
                update(_GRANTS).where(_GRANTS.c.id == bindparam("b_id")).values(updated_at=now),
                [{"b_id": grant_id} for grant_id, *_ in batch.grant_roles],
            )
            for grant_id, sub, urn, service_id, previous, added in batch.grant_roles:
                links += [{"access_grant_id": grant_id, "service_role_id": r} for r in added]
                trail.add(
                    "access.changed",
                    sub,
                    "user",
                    organisation=self.orgs[urn].public_id,
                    service=self.service_by_id[service_id].client_id,
                    roles=self._codes(previous + added),
                    previous_roles=self._codes(previous),
                )
        if links:
            conn.execute(insert(access_grant_roles), links)

    def _codes(self, role_ids: list[int]) -> list[str]:
        return sorted(self.role_codes[r] for r in role_ids)

    def _write_invitations(
        self,
        conn: Connection,
        batch: Batch,
        user_ids: dict[str, int],
        subs: dict[str, str],
        trail: Trail,
        now: datetime,
    ) -> None:
        """The same as :func:`idp.services.invitations.invite`, for a whole batch at once.

        A fresh single-use link per person (only its hash stored, C02), superseding any older
        unused one, and the invitation email queued in the outbox in the same unit of work.
        """
        if not batch.invitations:
            return
        lifetime = timedelta(hours=self.settings.invitation_lifetime_hours)
        ids = [user_ids[email] for email, _ in batch.invitations]
        conn.execute(
            update(_TOKENS)
            .where(
                and_(
                    _TOKENS.c.user_id.in_(ids),
                    _TOKENS.c.purpose == TokenPurpose.INVITATION.value,
                    _TOKENS.c.used_at.is_(None),
                )
            )
            .values(used_at=now)
        )
        tokens, messages = [], []
        for email, organisation_name in batch.invitations:
            raw = crypto.new_token()
            tokens.append(
                {
                    "user_id": user_ids[email],
                    "purpose": TokenPurpose.INVITATION.value,
                    "token_hash": crypto.token_hash(raw),
                    "created_at": now,
                    "expires_at": now + lifetime,
                    "data": {},
                }
            )
            personalisation = email_templates.normalise(
                "invitation",
                {
                    "link": public_url("invitation.accept", token=raw),
                    "expires_at": now + lifetime,
                    "organisation_name": organisation_name,
                },
            )
            plaintext = json.dumps(personalisation, separators=(",", ":"), sort_keys=True)
            messages.append(
                {
                    "kind": OutboxKind.EMAIL.value,
                    "recipient": email,
                    "template": "invitation",
                    "payload_ciphertext": crypto.encrypt(
                        plaintext.encode(), context=outbox.PAYLOAD_CONTEXT
                    ),
                    "status": OutboxStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
            trail.add("invitation.sent", subs[email], "user")
        conn.execute(insert(_TOKENS), tokens)
        conn.execute(insert(_OUTBOX), messages)


class Trail:
    """The batch's audit events, inserted with one statement (K03: same events as the console).

    :func:`audit.record` flushes one row at a time and logs each; for 100,000 rows that is the
    whole cost of the import, so the per-change events are inserted together here and the run's
    summary event (``import.authentix``) goes through :func:`audit.record` as usual.
    """

    def __init__(self, actor: str, now: datetime) -> None:
        self.rows: list[dict[str, Any]] = []
        self.common: dict[str, Any] = {
            "actor_id": actor,
            "outcome": audit.SUCCESS,
            "occurred_at": now,
            "reason": None,
        }
        if has_request_context():
            self.common["ip"] = request.remote_addr
            self.common["user_agent"] = (request.user_agent.string or "")[:512] or None
            self.common["request_id"] = g.get("request_id")

    def add(self, event: str, target: str, target_type: str, **details: Any) -> None:
        self.rows.append(
            {
                **self.common,
                "event": event,
                "target_id": target,
                "target_type": target_type,
                "details": {**details, "via": VIA},
            }
        )

    def flush(self, conn: Connection) -> None:
        if self.rows:
            conn.execute(insert(_AUDIT), self.rows)


_ORGS = cast(Table, Organisation.__table__)
_USERS = cast(Table, User.__table__)
_MEMBERSHIPS = cast(Table, Membership.__table__)
_GRANTS = cast(Table, AccessGrant.__table__)
_TOKENS = cast(Table, AccountToken.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
