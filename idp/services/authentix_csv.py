"""Reading an Authentix staff export: the file, its header and each row, before any database work.

Authentix (the legacy sign-in being retired, issue 8) exports one row per person per school.
The format we accept is documented in ``docs/authentix-import.md`` and on the console page:

=================  ============================================================================
Column             Meaning
=================  ============================================================================
URN                The establishment's URN from GIAS (digits).
Email              The person's own work address (a shared mailbox such as ``office@`` is
                   refused, as for every account).
Given name         First name.
Family name        Last name.
Approver           ``yes`` or ``no`` (also ``y``/``n``, ``true``/``false``, ``1``/``0``; blank
                   means no).
Services           Semicolon-separated services by client id, each optionally with roles after
                   a colon, joined by ``+``: ``school-census;pupil-data:viewer+editor``. Blank
                   means membership only.
School name        Optional. Used only to create an establishment whose URN we do not know.
=================  ============================================================================

Header names are matched ignoring case, spaces, hyphens and underscores (``Given Name``,
``given_name`` and ``GIVENNAME`` are one column). A ``password`` column (Authentix kept one
shared password per school) is never read: the importer warns that it was ignored (A09: an
invitation can never become a long-term password; everyone sets their own).

This module only turns text into checked values (:class:`StaffRow`) or a reason; whether the
URN, the service or the role exists is :mod:`idp.services.authentix_import`'s job.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from idp.config import Settings
from idp.services.csv_import import ImportFileError, RecordReader, read_header, records
from idp.services.users import InvalidEmail, RoleMailboxRefused, canonical_email
from idp.services.users import check_personal_email as _check_personal_email

COL_URN, COL_EMAIL, COL_GIVEN, COL_FAMILY = "urn", "email", "givenname", "familyname"
COL_APPROVER, COL_SERVICES, COL_SCHOOL = "approver", "services", "schoolname"
REQUIRED = (COL_URN, COL_EMAIL, COL_GIVEN, COL_FAMILY, COL_APPROVER, COL_SERVICES)
#: Other spellings seen in exports, mapped to our column keys.
ALIASES = {
    "emailaddress": COL_EMAIL,
    "firstname": COL_GIVEN,
    "forename": COL_GIVEN,
    "lastname": COL_FAMILY,
    "surname": COL_FAMILY,
    "establishmentname": COL_SCHOOL,
    "organisationname": COL_SCHOOL,
}
#: How each column is named in messages, as the documentation spells it.
LABELS = {
    COL_URN: "URN",
    COL_EMAIL: "Email",
    COL_GIVEN: "Given name",
    COL_FAMILY: "Family name",
    COL_APPROVER: "Approver",
    COL_SERVICES: "Services",
    COL_SCHOOL: "School name",
}
#: Columns that carry the legacy shared password: never read (A09).
PASSWORD_COLUMNS = frozenset({"password", "legacypassword", "sharedpassword", "passwordhash"})
YES = frozenset({"yes", "y", "true", "1"})
NO = frozenset({"no", "n", "false", "0", ""})
MAX_URN, MAX_NAME, MAX_SCHOOL_NAME = 16, 100, 255  # the columns' lengths in the schema
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_ROLE_CODE = re.compile(r"[A-Za-z0-9._:~-]{1,64}")


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: its first line (the header is line 1), the column at fault, and why."""

    line: int
    column: str | None
    reason: str
    email: str | None = None
    urn: str | None = None


@dataclass(frozen=True, slots=True)
class StaffRow:
    """One checked row: canonical email, names, URN, approver flag and services with roles."""

    line: int
    urn: str
    email: str
    given_name: str
    family_name: str
    approver: bool
    services: dict[str, frozenset[str]]  # client_id -> role codes (possibly none)
    school_name: str | None


def column_key(header: str) -> str:
    """``" Given Name "`` -> ``"givenname"``; strips a BOM that survived decoding."""
    clean = header.lstrip("\ufeff").removeprefix("ï»¿").casefold()
    key = re.sub(r"[\s_\-]+", "", clean)
    return ALIASES.get(key, key)


class Reader:
    """Reads records from a CSV stream and checks each one (:meth:`rows`)."""

    def __init__(self, stream: TextIO, settings: Settings) -> None:
        self.reader: RecordReader = csv.reader(stream)
        self.settings = settings
        self.password_column = False
        self.index = self._header()

    def _header(self) -> dict[str, int]:
        header = read_header(self.reader)
        self.width = len(header)
        index: dict[str, int] = {}
        for i, name in enumerate(header):
            key = column_key(name)
            if key in PASSWORD_COLUMNS:
                self.password_column = True  # remembered only to warn; never read
                continue
            index.setdefault(key, i)
        missing = [LABELS[c] for c in REQUIRED if c not in index]
        if missing:
            raise ImportFileError(
                "not an Authentix staff file: missing column(s) "
                + ", ".join(repr(c) for c in missing)
                + ". The columns are URN, Email, Given name, Family name, Approver, Services."
            )
        return index

    def rows(self) -> Iterator[StaffRow | RowError]:
        """Each non-blank record, checked: a :class:`StaffRow`, or a :class:`RowError`."""
        for line, fields in records(self.reader):
            if isinstance(fields, csv.Error):
                yield RowError(line, None, f"the row cannot be read as CSV: {fields}")
            else:
                yield self.check(line, fields)

    def _field(self, fields: list[str], column: str) -> str:
        i = self.index.get(column)
        return fields[i].strip() if i is not None and i < len(fields) else ""

    def check(self, line: int, fields: list[str]) -> StaffRow | RowError:
        """Validate one record's values (not whether its URN, services or roles exist)."""
        if len(fields) != self.width:
            return RowError(
                line,
                None,
                f"the row has {len(fields)} fields but the header has "
                f"{self.width}: check for an unquoted comma",
            )
        urn = self._field(fields, COL_URN)
        raw_email = self._field(fields, COL_EMAIL)
        if not urn:
            return RowError(line, "URN", "the URN is missing", email=raw_email[:320] or None)
        if not (urn.isascii() and urn.isdigit()) or len(urn) > MAX_URN:
            return RowError(
                line,
                "URN",
                f"the URN {urn[:20]!r} is not a number of up to {MAX_URN} digits",
                email=raw_email[:320] or None,
            )
        try:
            email = canonical_email(raw_email)
            _check_personal_email(email, self.settings)
        except (InvalidEmail, RoleMailboxRefused) as exc:
            shown = f"{raw_email[:80]!r}: " if raw_email else ""
            return RowError(line, "Email", shown + str(exc), email=raw_email[:320] or None, urn=urn)
        names = []
        for column in (COL_GIVEN, COL_FAMILY):
            value = " ".join(self._field(fields, column).split())
            if not value:
                return RowError(
                    line,
                    LABELS[column],
                    f"the {LABELS[column].lower()} is missing",
                    email=email,
                    urn=urn,
                )
            if len(value) > MAX_NAME:
                return RowError(
                    line,
                    LABELS[column],
                    f"the {LABELS[column].lower()} is longer than {MAX_NAME} characters",
                    email=email,
                    urn=urn,
                )
            names.append(value)
        approver = self._field(fields, COL_APPROVER).casefold()
        if approver not in YES | NO:
            return RowError(
                line,
                "Approver",
                f"Approver must be yes or no, not {approver[:20]!r}",
                email=email,
                urn=urn,
            )
        services = parse_services(self._field(fields, COL_SERVICES))
        if isinstance(services, str):
            return RowError(line, "Services", services, email=email, urn=urn)
        school = " ".join(self._field(fields, COL_SCHOOL).split()) or None
        if school and len(school) > MAX_SCHOOL_NAME:
            return RowError(
                line,
                "School name",
                f"the school name is longer than {MAX_SCHOOL_NAME} characters",
                email=email,
                urn=urn,
            )
        return StaffRow(line, urn, email, names[0], names[1], approver in YES, services, school)


def parse_services(text: str) -> dict[str, frozenset[str]] | str:
    """``"a;b:r1+r2"`` -> ``{"a": {}, "b": {"r1", "r2"}}``, or the reason it is malformed.

    The same service twice in one cell merges its roles, so ``a:x;a:y`` is ``a:x+y``.
    """
    services: dict[str, set[str]] = {}
    for entry in text.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        client_id, _, roles_text = entry.partition(":")
        client_id = client_id.strip()
        if not _CLIENT_ID.fullmatch(client_id):
            return f"{entry[:60]!r} is not a service: write client-id or client-id:role+role"
        roles = {r.strip() for r in roles_text.split("+") if r.strip()}
        bad = sorted(r for r in roles if not _ROLE_CODE.fullmatch(r))
        if bad:
            return f"{bad[0][:60]!r} is not a role code (in {entry[:60]!r})"
        services.setdefault(client_id, set()).update(roles)
    return {client_id: frozenset(roles) for client_id, roles in services.items()}
