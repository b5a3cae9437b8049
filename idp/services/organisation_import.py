"""Import establishments and local authorities from a GIAS-format CSV.

GIAS ("Get Information about Schools") publishes every establishment in England as one CSV of
about 50,000 rows and 130 columns, usually in cp1252 and sometimes with a BOM. We read eight
of those columns and ignore the rest.

Why it is shaped like this:

* **Fast enough for the whole register.** One query loads every existing organisation keyed
  by URN; rows are validated and diffed in Python; only the differences are written, with Core
  ``executemany`` INSERT and UPDATE in batches. One ORM object per row would be ten times
  slower and hold every row in the identity map.
* **Safe to re-run.** The upsert is keyed by URN (establishments) and LA code (local
  authorities). Re-running a file writes nothing but the audit record.
* **Never half-written.** Each batch is one unit of work (:func:`transaction`): it commits
  whole or not at all. If a batch fails, the batches before it stay committed, which is
  harmless because the import is idempotent: re-running finishes the job.
* **One bad row never stops the rest.** Each malformed row becomes a :class:`RowError` with its
  line number and reason. Only a file that cannot be read at all (missing, not a CSV, wrong
  columns) raises :class:`ImportFileError`, and it does so before anything is written.
* **Accountable.** One ``organisations.imported`` audit event with the counts, committed with
  the last batch; a failure records the same event with outcome ``failure``. A dry run writes
  nothing at all, not even the audit event, since nothing happened.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO, cast

from sqlalchemy import Connection, String, Table, bindparam, insert, select, update

from idp.extensions import db
from idp.models.base import new_uuid, utcnow
from idp.models.organisation import Organisation, OrganisationStatus, OrganisationType
from idp.services import audit
from idp.services.csv_import import (
    ImportFileError,
    ProgressCallback,
    RejectedRows,
    Source,
    open_source,
    read_header,
    records,
    source_name,
)
from idp.services.transaction import transaction

log = logging.getLogger(__name__)

COL_URN = "URN"
COL_NAME = "EstablishmentName"
COL_LA_CODE = "LA (code)"
COL_LA_NAME = "LA (name)"
COL_TYPE = "TypeOfEstablishment (name)"
COL_STATUS = "EstablishmentStatus (name)"
COL_UKPRN = "UKPRN"
COL_POSTCODE = "Postcode"
# All eight are required: a file without, say, ``LA (code)`` would otherwise unlink every
# school from its local authority on update. Any other column is ignored.
REQUIRED_COLUMNS = (
    COL_URN,
    COL_NAME,
    COL_LA_CODE,
    COL_LA_NAME,
    COL_TYPE,
    COL_STATUS,
    COL_UKPRN,
    COL_POSTCODE,
)

# GIAS's labels, compared case-insensitively; anything else rejects the row rather than guess.
STATUS_BY_GIAS_NAME = {
    "open": OrganisationStatus.OPEN,
    "closed": OrganisationStatus.CLOSED,
    "open, but proposed to close": OrganisationStatus.PROPOSED_TO_CLOSE,
    "proposed to open": OrganisationStatus.PROPOSED_TO_OPEN,
}
# GIAS lists establishments outside any local authority (e.g. British schools overseas) under
# LA "000 Does not apply". That is not a local authority, so no parent is linked.
NO_LOCAL_AUTHORITY_CODES = frozenset({"000"})
NO_LOCAL_AUTHORITY_NAMES = frozenset({"does not apply"})

# Changes per unit of work: big enough to amortise round trips, small enough that a failed
# batch is cheap to redo and memory stays flat.
BATCH_SIZE = 2000
# How often (in rows) to report progress; per-row callbacks would cost more than the parsing.
PROGRESS_EVERY = 500
# Decoding, the header and line numbers are shared with the Authentix staff import
# (:mod:`idp.services.csv_import`); ImportFileError is imported from here by callers.

_TABLE = cast(Table, Organisation.__table__)
_C = _TABLE.c


def _limit(column: str) -> int:
    """Field limits come from the model so the import and the schema cannot disagree."""
    return cast(int, cast(String, _C[column].type).length)


MAX_URN, MAX_NAME, MAX_TYPE = _limit("urn"), _limit("name"), _limit("establishment_type")
MAX_POSTCODE, MAX_LA_CODE = _limit("postcode"), _limit("la_code")
UKPRN_DIGITS = 8  # the UK Register of Learning Providers number is always eight digits


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: the line it starts on (the header is line 1), its URN if any, and why."""

    line: int
    urn: str | None
    reason: str


@dataclass(slots=True)
class ImportResult(RejectedRows):
    """What an import did (or, for a dry run, would do)."""

    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    local_authorities_created: int = 0
    local_authorities_updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    encoding: str | None = None

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.local_authorities_created
            or self.local_authorities_updated
        )

    def counts(self) -> dict[str, int]:
        """The figures for the audit log and for machines (bench, JSON output)."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "local_authorities_created": self.local_authorities_created,
            "local_authorities_updated": self.local_authorities_updated,
        }

    def summary(self) -> list[str]:
        """Human summary lines; a re-run of the same file says plainly that nothing changed."""
        rejected = self.rejected_note()
        if not self.changed:
            prefix = "Dry run: no changes would be made" if self.dry_run else "No changes"
            return [f"{prefix}: {self.unchanged} unchanged{rejected}"]
        verb = "would be " if self.dry_run else ""
        lines = ["Dry run: nothing was written."] if self.dry_run else []
        lines.append(
            f"Establishments: {self.created} {verb}created, {self.updated} {verb}updated, "
            f"{self.unchanged} unchanged{rejected}"
        )
        lines.append(
            f"Local authorities: {self.local_authorities_created} {verb}created, "
            f"{self.local_authorities_updated} {verb}updated"
        )
        return lines


@dataclass(slots=True)
class _LocalAuthority:
    id: int | None  # None until inserted (or forever, in a dry run)
    name: str
    seen: bool = False  # the first row naming an LA sets its name; later rows cannot flip it


# What we compare to decide "unchanged": type, name, status, establishment_type, ukprn,
# postcode and the LA code (the parent by its stable key, since a new LA has no id yet).
_Fields = tuple[str, str, str, str | None, str | None, str | None, str | None]


@dataclass(slots=True)
class _Batch:
    creates: list[tuple[str, _Fields]] = field(default_factory=list)
    updates: list[tuple[int, _Fields]] = field(default_factory=list)
    la_creates: list[str] = field(default_factory=list)
    la_renames: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.la_creates) + len(self.la_renames)


def import_organisations(
    source: Source,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    actor: str = "system",
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Upsert establishments and their local authorities from a GIAS CSV (a path or text stream).

    A path is decoded as UTF-8 (with or without BOM), else cp1252, else latin-1, checked over
    the whole file before anything is written. A text stream is used as already decoded.
    Raises :class:`ImportFileError` if the file cannot be read at all; every other problem is
    a :class:`RowError` in the result. Needs an application context. It commits on the shared
    session once per batch, so call it with no other work pending in that session.
    """
    with open_source(source) as (stream, total, encoding):
        importer = _Importer(dry_run=dry_run, actor=actor, batch_size=batch_size)
        importer.result.encoding = encoding
        return importer.run(stream, total, progress, source_name(source))


class _Importer:
    """The state of one import run: the existing organisations, the pending batch, the result."""

    def __init__(self, *, dry_run: bool, actor: str, batch_size: int) -> None:
        self.dry_run = dry_run
        self.actor = actor
        self.batch_size = max(1, batch_size)
        self.result = ImportResult(dry_run=dry_run)
        self.batch = _Batch()
        self.existing: dict[str, tuple[int, _Fields]] = {}
        self.las: dict[str, _LocalAuthority] = {}
        self.first_line_by_urn: dict[str, int] = {}
        self.committed = {"created": 0, "updated": 0}
        self.width = 0  # fields in the header; every record must have exactly as many

    # -- reading --------------------------------------------------------------------------

    def run(
        self, stream: TextIO, total: int | None, progress: ProgressCallback | None, source: str
    ) -> ImportResult:
        reader = csv.reader(stream)
        index = self._read_header(reader)
        self._load_existing()
        rows = 0
        try:
            for line, fields in records(reader):
                if isinstance(fields, csv.Error):
                    self._reject(line, None, f"unreadable CSV: {fields}")
                    continue
                rows += 1
                self._row(line, reader.line_num, fields, index)
                if len(self.batch) >= self.batch_size:
                    self._flush()
                if progress and rows % PROGRESS_EVERY == 0:
                    progress(rows, total)
            self._flush(final=source)
        except BaseException as exc:  # Ctrl-C too: an interrupted import is still recorded
            self._record_failure(source, exc)
            raise
        if progress:
            progress(rows, rows)  # the estimate may count blank lines or multi-line records
        return self.result

    def _read_header(self, reader: Iterator[list[str]]) -> dict[str, int]:
        header = read_header(reader)
        self.width = len(header)
        index: dict[str, int] = {}
        for i, name in enumerate(header):
            index.setdefault(name, i)
        missing = [c for c in REQUIRED_COLUMNS if c not in index]
        if missing:
            raise ImportFileError(
                "not a GIAS establishments file: missing column(s) "
                + ", ".join(repr(c) for c in missing)
            )
        return {c: index[c] for c in REQUIRED_COLUMNS}

    def _load_existing(self) -> None:
        """Every organisation with a URN or LA code, in two queries, as plain tuples."""
        conn = db.session.connection()
        code_by_id: dict[int, str] = {}
        for id_, code, name in conn.execute(
            select(_C.id, _C.la_code, _C.name).where(_C.la_code.is_not(None))
        ):
            self.las[code] = _LocalAuthority(id_, name)
            code_by_id[id_] = code
        query = select(
            _C.id, _C.urn, _C.type, _C.name, _C.status, _C.establishment_type,
            _C.ukprn, _C.postcode, _C.local_authority_id,
        ).where(_C.urn.is_not(None))  # fmt: skip
        for id_, urn, type_, name, status, est_type, ukprn, postcode, la_id in conn.execute(query):
            # A parent with no LA code cannot match any file value, so the row is updated.
            la_code = None if la_id is None else code_by_id.get(la_id, f"#{la_id}")
            self.existing[urn] = (id_, (type_, name, status, est_type, ukprn, postcode, la_code))

    # -- validating and diffing -----------------------------------------------------------

    def _reject(self, line: int, urn: str | None, reason: str) -> None:
        self.result.errors.append(RowError(line, urn, reason))

    def _row(self, line: int, end_line: int, fields: list[str], index: dict[str, int]) -> None:
        if len(fields) != self.width:
            # Too many fields usually means an unquoted comma, which shifts every later column:
            # the values would land in the wrong fields, so the row is refused, not guessed at.
            span = f" (the record spans lines {line}-{end_line})" if end_line > line else ""
            self._reject(line, None, f"{len(fields)} fields, but the header has {self.width}{span}")
            return
        urn = fields[index[COL_URN]].strip()
        if not urn:
            self._reject(line, None, "URN is missing")
            return
        if not urn.isascii() or not urn.isdigit():
            self._reject(line, urn[:MAX_URN], f"URN {urn[:MAX_URN]!r} is not a number")
            return
        if len(urn) > MAX_URN:
            self._reject(line, urn[:MAX_URN], f"URN is longer than {MAX_URN} digits")
            return
        first = self.first_line_by_urn.setdefault(urn, line)
        if first != line:
            self._reject(line, urn, f"duplicate URN: already on line {first}")
            return
        reason, values = _validate(fields, index)
        if reason:
            self._reject(line, urn, reason)
            return
        name, status, est_type, ukprn, postcode, la_code, la_name = values
        if la_code is not None:
            self._local_authority(la_code, cast(str, la_name))
        record: _Fields = (
            OrganisationType.ESTABLISHMENT, cast(str, name), cast(str, status),
            est_type, ukprn, postcode, la_code,
        )  # fmt: skip
        found = self.existing.get(urn)
        if found is None:
            self.result.created += 1
            self.batch.creates.append((urn, record))
        elif found[1] == record:
            self.result.unchanged += 1
        else:
            self.result.updated += 1
            self.batch.updates.append((found[0], record))

    def _local_authority(self, code: str, name: str) -> None:
        la = self.las.get(code)
        if la is None:
            self.las[code] = _LocalAuthority(None, name, seen=True)
            self.result.local_authorities_created += 1
            self.batch.la_creates.append(code)
        elif not la.seen:
            la.seen = True
            if la.name != name:
                la.name = name
                self.result.local_authorities_updated += 1
                self.batch.la_renames.append(code)

    # -- writing --------------------------------------------------------------------------

    def _flush(self, final: str | None = None) -> None:
        """Write the pending batch (and, on the last one, the audit event) as one unit of work."""
        batch, self.batch = self.batch, _Batch()
        if self.dry_run:
            if final is not None:
                db.session.rollback()  # end the read transaction; a dry run writes nothing
            return
        with transaction() as session:
            self._write(session.connection(), batch)
            if final is not None:
                details: dict[str, Any] = {"source": final, "encoding": self.result.encoding}
                details.update(self.result.counts())
                audit.record(
                    "organisations.imported",
                    actor=self.actor,
                    target_type="organisations",
                    **details,
                )
        self.committed["created"] += len(batch.creates)
        self.committed["updated"] += len(batch.updates)

    def _write(self, conn: Connection, batch: _Batch) -> None:
        now = utcnow()
        if batch.la_creates:
            new_las = conn.execute(
                insert(_TABLE).returning(_C.id, _C.la_code),
                [
                    {
                        "public_id": new_uuid(),
                        "type": OrganisationType.LOCAL_AUTHORITY,
                        "status": OrganisationStatus.OPEN,
                        "name": self.las[code].name,
                        "la_code": code,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for code in batch.la_creates
                ],
            )
            for id_, code in new_las:
                self.las[code].id = id_
        if batch.la_renames:
            conn.execute(
                update(_TABLE)
                .where(_C.id == bindparam("b_id"))
                .values(name=bindparam("b_name"), updated_at=now),
                [{"b_id": self.las[c].id, "b_name": self.las[c].name} for c in batch.la_renames],
            )
        if batch.creates:
            conn.execute(
                insert(_TABLE),
                [
                    {
                        "urn": urn,
                        "public_id": new_uuid(),
                        "created_at": now,
                        **self._values(rec, now),
                    }
                    for urn, rec in batch.creates
                ],
            )
        if batch.updates:
            conn.execute(
                _UPDATE_ESTABLISHMENT,
                [
                    {"b_id": id_, **{f"b_{k}": v for k, v in self._values(rec, now).items()}}
                    for id_, rec in batch.updates
                ],
            )

    def _values(self, record: _Fields, now: datetime) -> dict[str, Any]:
        """Column values for one establishment; the parent LA's id is known by now."""
        type_, name, status, est_type, ukprn, postcode, la_code = record
        return {
            "type": type_,
            "name": name,
            "status": status,
            "establishment_type": est_type,
            "ukprn": ukprn,
            "postcode": postcode,
            "local_authority_id": None if la_code is None else self.las[la_code].id,
            "updated_at": now,
        }

    def _record_failure(self, source: str, exc: BaseException) -> None:
        """Record that an import failed and how far it got, if the database still lets us."""
        if self.dry_run:
            return
        try:
            with transaction():
                audit.record(
                    "organisations.imported",
                    actor=self.actor,
                    target_type="organisations",
                    outcome=audit.FAILURE,
                    reason=f"{type(exc).__name__}: {exc}"[:1000],
                    source=source,
                    committed_created=self.committed["created"],
                    committed_updated=self.committed["updated"],
                )
        except Exception:
            # The original failure is what the caller must see; this one only goes to the log.
            log.exception("could not record the failed organisation import in the audit log")


_UPDATE_ESTABLISHMENT = (
    update(_TABLE)
    .where(_C.id == bindparam("b_id"))
    .values(
        {
            name: bindparam(f"b_{name}")
            for name in (
                "type", "name", "status", "establishment_type",
                "ukprn", "postcode", "local_authority_id", "updated_at",
            )
        }
    )
)  # fmt: skip


def _validate(
    fields: list[str], index: dict[str, int]
) -> tuple[str | None, tuple[str | None, ...]]:
    """Check one row's fields (all but the URN): (reason, ()) if bad, else (None, values)."""
    nothing: tuple[str | None, ...] = ()
    name = " ".join(fields[index[COL_NAME]].split())
    if not name:
        return "EstablishmentName is missing", nothing
    if len(name) > MAX_NAME:
        return f"EstablishmentName is longer than {MAX_NAME} characters", nothing
    raw_status = fields[index[COL_STATUS]].strip()
    status = STATUS_BY_GIAS_NAME.get(raw_status.casefold())
    if status is None:
        return f"unknown EstablishmentStatus {raw_status[:60]!r}", nothing
    est_type = fields[index[COL_TYPE]].strip() or None
    if est_type and len(est_type) > MAX_TYPE:
        return f"TypeOfEstablishment is longer than {MAX_TYPE} characters", nothing
    ukprn = fields[index[COL_UKPRN]].strip() or None
    if ukprn and not (len(ukprn) == UKPRN_DIGITS and ukprn.isascii() and ukprn.isdigit()):
        return f"UKPRN {ukprn[:20]!r} is not an {UKPRN_DIGITS}-digit number", nothing
    postcode = " ".join(fields[index[COL_POSTCODE]].upper().split()) or None
    if postcode and len(postcode) > MAX_POSTCODE:
        return f"Postcode is longer than {MAX_POSTCODE} characters", nothing
    la_code = fields[index[COL_LA_CODE]].strip() or None
    la_name = " ".join(fields[index[COL_LA_NAME]].split()) or None
    if la_code in NO_LOCAL_AUTHORITY_CODES or (
        la_name and la_name.casefold() in NO_LOCAL_AUTHORITY_NAMES
    ):
        la_code = la_name = None
    if la_code is not None:
        if not (la_code.isascii() and la_code.isdigit()):
            return f"LA (code) {la_code[:20]!r} is not a number", nothing
        if len(la_code) > MAX_LA_CODE:
            return f"LA (code) is longer than {MAX_LA_CODE} digits", nothing
        if not la_name:
            return "LA (name) is missing for LA (code) " + la_code, nothing
        if len(la_name) > MAX_NAME:
            return f"LA (name) is longer than {MAX_NAME} characters", nothing
    elif la_name:
        return "LA (name) is given without an LA (code)", nothing
    return None, (name, status, est_type, ukprn, postcode, la_code, la_name)
