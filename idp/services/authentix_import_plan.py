"""Planning the Authentix import: read rows in batches, load what exists, decide each change.

Split from :mod:`idp.services.authentix_import` (the entry points and the rules, documented
there) and :mod:`idp.services.authentix_import_write` (the writes) so each module has one job.
Per batch: check each row's URN, services and roles against what exists (one load of every
establishment and service per run), load the batch's people with their memberships, grants and
live invitations (one query per table per batch), then plan each row in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, TextIO

from flask import current_app
from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from idp.config import Settings
from idp.extensions import db
from idp.models import (
    AccessGrant,
    AccountToken,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationType,
    Service,
    TokenPurpose,
    User,
    UserStatus,
)
from idp.models.base import new_uuid, utcnow
from idp.models.service import access_grant_roles
from idp.services import access, audit
from idp.services.authentix_csv import Reader, RowError, StaffRow
from idp.services.authentix_import_write import Batch, Org, Person, ServiceInfo, Writer
from idp.services.csv_import import ProgressCallback, RejectedRows
from idp.services.transaction import transaction

log = logging.getLogger(__name__)

BATCH_ROWS = 500  # rows per unit of work: few round trips, small redo on failure, flat memory
PROGRESS_EVERY = 500
PLAN_LIMIT = 1000  # per-row plans kept for the report; the counts cover every row
EVENT = "import.authentix"
IGNORED_COLUMN_NOTE = (
    "The password column was ignored: passwords are never imported. "
    "Everyone sets their own from their invitation."
)


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What one row changes (or, in a dry run, would change), in words."""

    line: int
    email: str
    urn: str
    changes: tuple[str, ...]


@dataclass(slots=True)
class ImportResult(RejectedRows):
    """What an import did (or, for a dry run, would do)."""

    dry_run: bool = False
    encoding: str | None = None
    rows: int = 0
    organisations_created: int = 0
    users_created: int = 0
    memberships_added: int = 0
    memberships_promoted: int = 0
    grants_created: int = 0
    grants_changed: int = 0
    invitations_sent: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plans: list[RowPlan] = field(default_factory=list)
    plans_left_off: int = 0

    @property
    def changed_rows(self) -> int:
        return self.rows - self.rejected - self.unchanged

    def counts(self) -> dict[str, int]:
        """The figures for the audit log, the results page and machines."""
        return {
            "rows": self.rows,
            "changed_rows": self.changed_rows,
            "unchanged_rows": self.unchanged,
            "rejected_rows": self.rejected,
            "organisations_created": self.organisations_created,
            "users_created": self.users_created,
            "memberships_added": self.memberships_added,
            "memberships_promoted": self.memberships_promoted,
            "grants_created": self.grants_created,
            "grants_changed": self.grants_changed,
            "invitations_sent": self.invitations_sent,
        }

    def summary(self) -> list[str]:
        """Plain-English summary lines; a re-run says plainly that nothing changed."""
        verb = "would be " if self.dry_run else ""
        lines = ["Dry run: nothing was written and no email was sent."] if self.dry_run else []
        rejected = self.rejected_note()
        lines.append(
            f"Rows: {self.rows} read, {self.changed_rows} {verb}imported, "
            f"{self.unchanged} unchanged{rejected}"
        )
        if self.changed_rows:
            lines += [
                f"Accounts: {self.users_created} {verb}created",
                f"Establishments: {self.organisations_created} {verb}created",
                f"Memberships: {self.memberships_added} {verb}added, "
                f"{self.memberships_promoted} {verb}made approver",
                f"Service access: {self.grants_created} {verb}granted, "
                f"{self.grants_changed} {verb}given more roles",
                f"Invitations: {self.invitations_sent} {verb}sent",
            ]
        return lines + [f"Warning: {w}" for w in self.warnings]


#: The result's figures one batch's planning moves (``rows`` is counted as the file is read).
_BATCH_COUNTS: tuple[str, ...] = (
    "organisations_created",
    "users_created",
    "memberships_added",
    "memberships_promoted",
    "grants_created",
    "grants_changed",
    "invitations_sent",
    "unchanged",
    "plans_left_off",
)


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where the result stood before a batch was planned (to plan it again after a race)."""

    counts: dict[str, int]
    errors: int
    plans: int


class Planner:
    """One import run: reads rows, plans each batch's changes and has them written."""

    def __init__(self, *, dry_run: bool, actor: str, batch_rows: int) -> None:
        self.settings: Settings = current_app.extensions["settings"]
        self.dry_run = dry_run
        self.actor = actor
        self.batch_rows = max(1, batch_rows)
        self.result = ImportResult(dry_run=dry_run)
        self.orgs: dict[str, Org] = {}
        self.services: dict[str, ServiceInfo] = {}
        self.service_by_id: dict[int, ServiceInfo] = {}
        self.role_codes: dict[int, str] = {}  # service_roles.id -> code
        self.writer = Writer(
            orgs=self.orgs,
            services=self.service_by_id,
            role_codes=self.role_codes,
            settings=self.settings,
            actor=actor,
        )
        self.pair_lines: dict[tuple[str, str], int] = {}  # (email, URN) -> first line
        self.planned_users: dict[str, str] = {}  # email -> sub, created (or planned) this run
        self.invited: set[str] = set()
        self.committed: dict[str, int] = {"users_created": 0, "invitations_sent": 0}

    # -- reading ----------------------------------------------------------------------------

    def run(
        self, stream: TextIO, total: int | None, progress: ProgressCallback | None, source: str
    ) -> ImportResult:
        reader = Reader(stream, self.settings)
        if reader.password_column:
            self.result.warnings.append(IGNORED_COLUMN_NOTE)
        self._load_reference_data()
        chunk: list[StaffRow] = []
        try:
            for item in reader.rows():
                self.result.rows += 1
                if isinstance(item, RowError):
                    self.result.errors.append(item)
                else:
                    chunk.append(item)
                if len(chunk) >= self.batch_rows:
                    self._batch(chunk)
                    chunk = []
                if progress and self.result.rows % PROGRESS_EVERY == 0:
                    progress(self.result.rows, total)
            self._batch(chunk, final=source)
        except BaseException as exc:  # Ctrl-C too: an interrupted import is still recorded
            self._record_failure(source, exc)
            raise
        self.result.errors.sort(key=lambda e: e.line)
        if progress:
            progress(self.result.rows, self.result.rows)
        return self.result

    def _load_orgs(self, where: ColumnElement[bool]) -> None:
        """Establishments by URN (as tuples, not ORM objects: there may be 50,000)."""
        rows = db.session.execute(
            select(
                Organisation.id,
                Organisation.urn,
                Organisation.public_id,
                Organisation.name,
                Organisation.type,
            ).where(where)
        )
        for id_, urn, public_id, name, type_ in rows:
            self.orgs[str(urn)] = Org(id_, public_id, name, str(type_))

    def _load_reference_data(self) -> None:
        """Every establishment by URN (as tuples) and every service with its roles."""
        self._load_orgs(Organisation.urn.is_not(None))
        for service in db.session.scalars(select(Service).options(selectinload(Service.roles))):
            allowed = {}
            for org_type in OrganisationType:
                # access.roles_allowed is the rule; a transient organisation carries the type.
                probe = Organisation(type=org_type, name="")
                allowed[str(org_type)] = frozenset(
                    r.code for r in access.roles_allowed(service, probe)
                )
            found = self.services[service.client_id] = ServiceInfo(
                service.id,
                service.client_id,
                service.name,
                {r.code: r.id for r in service.roles},
                {r.code: r.name for r in service.roles},
                allowed,
            )
            self.service_by_id[service.id] = found
            self.role_codes.update({r.id: r.code for r in service.roles})
        db.session.rollback()  # end the read transaction before the batches begin

    # -- planning -----------------------------------------------------------------------------

    def _batch(self, rows: list[StaffRow], final: str | None = None) -> None:
        """Plan and write one batch; planned again once if someone else got there first.

        An approver (or a service, or another import) may create one of these accounts, or
        add one of these memberships, between this batch's look-up and its insert. The
        unique constraints refuse the insert and the whole batch rolls back; it is then
        planned again from what is there now, so the other's account counts as existing, as
        it would have had it been there when we looked. A second refusal is not a race.
        """
        for attempt in (1, 2):
            mark = self._mark()
            batch = Batch()
            checked = [r for r in rows if self._references_ok(r, batch)]
            people = self._load_people({r.email for r in checked})
            for row in checked:
                self._plan(row, people, batch)
            if self.dry_run:
                db.session.rollback()  # end the read transaction; a dry run writes nothing
                return
            try:
                with transaction() as session:
                    self.writer.write(session.connection(), batch, people)
                    if final is not None:
                        details: dict[str, Any] = {
                            "source": final,
                            "encoding": self.result.encoding,
                        }
                        details.update(self.result.counts())
                        audit.record(
                            EVENT, actor=self.actor, target_type="organisations", **details
                        )
            except IntegrityError:
                if attempt == 2:
                    raise
                self._rewind(mark, batch)
                continue
            self.committed["users_created"] += len(batch.users)
            self.committed["invitations_sent"] += len(batch.invitations)
            return

    def _mark(self) -> _Mark:
        result = self.result
        return _Mark(
            {name: getattr(result, name) for name in _BATCH_COUNTS},
            len(result.errors),
            len(result.plans),
        )

    def _rewind(self, mark: _Mark, batch: Batch) -> None:
        """Forget what a rolled-back batch planned, so planning it again starts clean."""
        for name, value in mark.counts.items():
            setattr(self.result, name, value)
        del self.result.errors[mark.errors :]
        del self.result.plans[mark.plans :]
        for _sub, email, _given, _family in batch.users:
            self.planned_users.pop(email, None)
        self.invited.difference_update(email for email, _name in batch.invitations)
        for urn in batch.orgs:
            del self.orgs[urn]
        if batch.orgs:  # another run may have created one of them meanwhile
            self._load_orgs(Organisation.urn.in_(batch.orgs))

    def _reject(self, row: StaffRow, column: str, reason: str) -> bool:
        self.result.errors.append(RowError(row.line, column, reason, row.email, row.urn))
        return False

    def _references_ok(self, row: StaffRow, batch: Batch) -> bool:
        """The URN, services and roles exist and fit; a new establishment is planned here."""
        first = self.pair_lines.setdefault((row.email, row.urn), row.line)
        if first != row.line:
            return self._reject(
                row, "Email", f"{row.email} at URN {row.urn} is already on line {first}"
            )
        org = self.orgs.get(row.urn)
        if org is None and not row.school_name:
            return self._reject(
                row,
                "URN",
                f"no establishment has URN {row.urn}: import it from "
                "GIAS first, or give its name in a School name column",
            )
        org_type = org.type if org else str(OrganisationType.ESTABLISHMENT)
        org_name = org.name if org else str(row.school_name)
        for client_id, codes in row.services.items():
            service = self.services.get(client_id)
            if service is None:
                return self._reject(row, "Services", f"there is no service {client_id!r}")
            unknown = sorted(codes - service.role_ids.keys())
            if unknown:
                return self._reject(
                    row, "Services", f"{service.name} has no role called {', '.join(unknown)}"
                )
            refused = sorted(codes - service.allowed[org_type])
            if refused:
                names = ", ".join(service.role_names[c] for c in refused)
                return self._reject(
                    row, "Services", f"{org_name} cannot hold the {service.name} role {names}"
                )
        if org is None:
            self.orgs[row.urn] = Org(None, new_uuid(), org_name, org_type)
            batch.orgs.append(row.urn)
            batch.org_lines.add(row.line)
            self.result.organisations_created += 1
        return True

    def _load_people(self, emails: set[str]) -> dict[str, Person]:
        """The batch's existing accounts with their memberships, grants and live invitations."""
        if not emails:
            return {}
        people: dict[str, Person] = {}
        by_id: dict[int, Person] = {}
        for id_, email, sub, status in db.session.execute(
            select(User.id, User.email, User.sub, User.status).where(User.email.in_(emails))
        ):
            by_id[id_] = people[email] = Person(id_, sub, UserStatus(status))
        for email in emails - people.keys():
            if email in self.planned_users:  # planned earlier in this dry run
                people[email] = Person(None, self.planned_users[email], UserStatus.INVITED)
        if not by_id:
            return people
        ids = list(by_id)
        for id_, user_id, org_id, role in db.session.execute(
            select(
                Membership.id, Membership.user_id, Membership.organisation_id, Membership.role
            ).where(Membership.user_id.in_(ids))
        ):
            by_id[user_id].memberships[org_id] = (id_, MembershipRole(role))
        grants: dict[int, tuple[Person, tuple[int, int]]] = {}
        for id_, user_id, org_id, service_id in db.session.execute(
            select(
                AccessGrant.id,
                AccessGrant.user_id,
                AccessGrant.organisation_id,
                AccessGrant.service_id,
            ).where(AccessGrant.user_id.in_(ids))
        ):
            by_id[user_id].grants[(org_id, service_id)] = (id_, set())
            grants[id_] = (by_id[user_id], (org_id, service_id))
        if grants:
            for grant_id, role_id in db.session.execute(
                select(
                    access_grant_roles.c.access_grant_id, access_grant_roles.c.service_role_id
                ).where(access_grant_roles.c.access_grant_id.in_(list(grants)))
            ):
                person, key = grants[grant_id]
                person.grants[key][1].add(role_id)
        for (user_id,) in db.session.execute(
            select(AccountToken.user_id).where(
                AccountToken.user_id.in_(ids),
                AccountToken.purpose == TokenPurpose.INVITATION,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > utcnow(),
            )
        ):
            by_id[user_id].live_invitation = True
        return people

    def _plan(self, row: StaffRow, people: dict[str, Person], batch: Batch) -> None:
        person = people.get(row.email)
        org = self.orgs[row.urn]
        changes: list[str] = []
        if person is not None and person.status is UserStatus.DEACTIVATED:
            self._reject(
                row,
                "Email",
                f"the account for {row.email} is deactivated: "
                "reactivate it in the helpdesk console, then import again",
            )
            return
        if row.line in batch.org_lines:
            changes.append(f"create establishment {org.name} (URN {row.urn})")
        if person is None:
            person = people[row.email] = Person(None, new_uuid(), UserStatus.INVITED, new=True)
            self.planned_users[row.email] = person.sub
            batch.users.append((person.sub, row.email, row.given_name, row.family_name))
            changes.append("create account")
            self.result.users_created += 1
        org_key: int | str = org.id if org.id is not None else row.urn
        role = MembershipRole.APPROVER if row.approver else MembershipRole.MEMBER
        found = person.memberships.get(org_key)
        if found is None:
            person.memberships[org_key] = (0, role)
            batch.memberships.append((row.email, row.urn, role))
            changes.append(f"add as {role} of {org.name}")
            self.result.memberships_added += 1
        elif row.approver and found[1] is MembershipRole.MEMBER:
            batch.promotions.append((found[0], person.sub, row.urn))
            changes.append(f"make approver of {org.name}")
            self.result.memberships_promoted += 1
        for client_id, codes in sorted(row.services.items()):
            service = self.services[client_id]
            wanted = {service.role_ids[c] for c in codes}
            grant = person.grants.get((org_key, service.id))
            roles_text = f" ({', '.join(sorted(codes))})" if codes else ""
            if grant is None:
                batch.grants.append((row.email, row.urn, service.id, sorted(wanted)))
                changes.append(f"give access to {service.name}{roles_text}")
                self.result.grants_created += 1
            elif added := wanted - grant[1]:
                batch.grant_roles.append(
                    (grant[0], person.sub, row.urn, service.id, sorted(grant[1]), sorted(added))
                )
                changes.append(f"add roles to {service.name}{roles_text}")
                self.result.grants_changed += 1
        if (
            person.status is UserStatus.INVITED
            and not person.live_invitation
            and row.email not in self.invited
        ):
            self.invited.add(row.email)
            batch.invitations.append((row.email, org.name))
            changes.append("send invitation")
            self.result.invitations_sent += 1
        if not changes:
            self.result.unchanged += 1
        elif len(self.result.plans) < PLAN_LIMIT:
            self.result.plans.append(RowPlan(row.line, row.email, row.urn, tuple(changes)))
        else:
            self.result.plans_left_off += 1

    def _record_failure(self, source: str, exc: BaseException) -> None:
        """Record that an import failed and how far it got, if the database still lets us."""
        if self.dry_run:
            return
        try:
            progress: dict[str, Any] = {"source": source}
            progress.update({f"committed_{k}": v for k, v in self.committed.items()})
            with transaction():
                audit.record(
                    EVENT,
                    actor=self.actor,
                    target_type="organisations",
                    outcome=audit.FAILURE,
                    reason=f"{type(exc).__name__}: {exc}"[:1000],
                    **progress,
                )
        except Exception:
            log.exception("could not record the failed Authentix import in the audit log")
