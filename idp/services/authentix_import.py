"""Migrate schools off Authentix: import establishments' staff, memberships, access and invitations.

Issue 8 ("Migration off Authentix"); the file format is in :mod:`idp.services.authentix_csv`
and ``docs/authentix-import.md``. For each row the importer:

1. finds the establishment by URN (loaded from GIAS). An unknown URN is a row error, unless the
   row has a *School name*: then a minimal open establishment is created, to be completed by
   the next GIAS import (which matches it by URN). Existing organisations are never renamed
   here: GIAS is the source of truth for them;
2. finds the person by email or creates their account (``invited``, no password);
3. adds them to the establishment as ``member`` or ``approver`` (a member marked as approver
   is promoted; an approver marked ``no`` is *kept* as approver: demoting is an approver's
   decision in the console, with its last-approver rule, not a side effect of a migration);
4. grants each listed service with the listed roles, with the same rules as
   :mod:`idp.services.access` (the role must exist and be allowed for the organisation's
   type). Roles are only ever added to an existing grant, never taken away;
5. emails an invitation to each person whose account is still ``invited`` and who has no
   unexpired invitation link: once per run, and not again on a re-run (A09: the link is
   single-use and expiring; nobody's legacy password is imported, everyone sets their own).

Why it is shaped like this (the GIAS importer's shape, :mod:`.organisation_import`):

* **Safe to re-run.** Everything is matched (URN, email, user x organisation, user x
  organisation x service) and only differences are written; a re-run of the same file writes
  nothing but the summary audit event and sends no email.
* **Fast enough for 100,000 rows.** Rows are handled in batches: one query per table per batch
  loads what exists for the batch's people, the plan is made in Python, and only the changes
  are written with Core ``executemany`` (a per-row ORM walk would be one round trip per
  object). Memory stays flat whatever the file size.
* **One unit of work per batch** (:func:`transaction`), so a batch is written whole or not at
  all, and a failure part-way leaves earlier batches in place (a re-run finishes the job).
* **A bad row never stops the rest.** Each is a :class:`RowError` with its line, column and a
  plain-English reason; the whole row is skipped, so fixing it and re-running completes it.
* **Audited (K03).** Every change gets the same audit event the console would record
  (``user.created``, ``membership.added``, ``access.granted`` ...), with ``via:
  authentix_import``; the run gets one ``import.authentix`` event with the counts. A dry run
  reads everything, writes nothing, sends nothing and records nothing.

Concurrent runs of the importer are not coordinated. A batch whose insert collides with an
account, membership or establishment someone else (an approver, a service, another run) created
after the batch looked is rolled back and planned once more from what is there now, so that
person counts as already existing; a second collision fails the batch whole with a database
error, and a re-run finishes the job.
"""

from __future__ import annotations

import io
import secrets
from typing import cast

from flask import current_app

from idp.config import Settings
from idp.models import StaffRole, User, UserStatus
from idp.services.authentix_csv import RowError
from idp.services.authentix_import_plan import (
    BATCH_ROWS,
    EVENT,
    ImportResult,
    Planner,
    RowPlan,
)
from idp.services.csv_import import (
    ImportFileError,
    ProgressCallback,
    Source,
    decode,
    open_source,
    source_name,
)
from idp.store import get_store

__all__ = [
    "EVENT",
    "ImportFileError",
    "ImportResult",
    "RowError",
    "RowPlan",
    "import_staff",
    "import_upload",
    "stash_upload",
    "take_upload",
]


def import_staff(
    source: Source,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    actor: str = "system",
    batch_rows: int = BATCH_ROWS,
) -> ImportResult:
    """Import an Authentix staff CSV (a path, or an already-decoded text stream).

    A path is decoded as UTF-8 (with or without BOM), else cp1252, else latin-1, checked over
    the whole file first. Raises :class:`ImportFileError` if the file cannot be read at all
    (before writing anything); every other problem is a :class:`RowError` in the result.
    Needs an application context; commits on the shared session once per batch.
    """
    with open_source(source) as (stream, total, encoding):
        importer = Planner(dry_run=dry_run, actor=actor, batch_rows=batch_rows)
        importer.result.encoding = encoding
        return importer.run(stream, total, progress, source_name(source)[:200])


def import_upload(data: bytes, *, staff: User, dry_run: bool, filename: str) -> ImportResult:
    """The console's import of an uploaded file, by a helpdesk person (checked here, K01).

    Decoded as :func:`import_staff` decodes a path (UTF-8 with or without BOM, else cp1252).
    """
    if staff.status is not UserStatus.ACTIVE or staff.staff_role not in HELPDESK_ROLES:
        raise PermissionError("only helpdesk staff may import staff from Authentix")
    text, encoding = decode(data)
    settings: Settings = current_app.extensions["settings"]
    lines = text.count("\n") + (not text.endswith("\n"))
    if lines - 1 > settings.authentix_console_max_rows:
        raise ImportFileError(
            f"the file has about {lines - 1:,} rows, and the console imports up to "
            f"{settings.authentix_console_max_rows:,} at a time. Split it into smaller files, "
            "or ask the technical team to import it with flask import-authentix"
        )
    stream = io.StringIO(text, newline="")
    with open_source(stream) as (opened, total, _):
        planner = Planner(dry_run=dry_run, actor=staff.sub, batch_rows=BATCH_ROWS)
        planner.result.encoding = encoding
        return planner.run(opened, total, None, filename[:200] or "upload.csv")


def stash_upload(data: bytes, *, staff: User, filename: str) -> str:
    """Keep a checked upload for a short while, so "Import" applies exactly what was checked.

    The copy lives in the store (it holds names and emails, so only briefly) under a random id,
    and only the person who uploaded it can take it back.
    """
    upload_id = secrets.token_urlsafe(16)
    settings: Settings = current_app.extensions["settings"]
    key = _UPLOAD_KEY + upload_id
    pipe = get_store().pipeline(transaction=True)
    pipe.hset(key, mapping={"owner": staff.sub, "filename": filename[:200], "data": data})
    pipe.expire(key, settings.authentix_upload_ttl_minutes * 60)
    pipe.execute()
    return upload_id


def take_upload(upload_id: str, *, staff: User) -> tuple[bytes, str] | None:
    """The stashed upload (data, filename) if it is still there and ``staff``'s; used up."""
    if not upload_id or len(upload_id) > 64:
        return None
    key = _UPLOAD_KEY + upload_id
    store = get_store()
    owner = store.hget(key, "owner")
    if owner is None or cast(bytes, owner).decode() != staff.sub:
        return None  # gone, or someone else's (left alone for them)
    # Read and delete in one MULTI, so two presses of Import cannot both take the file.
    pipe = store.pipeline(transaction=True)
    pipe.hgetall(key)
    pipe.delete(key)
    fetched, deleted = pipe.execute()
    found = cast(dict[bytes, bytes], fetched)
    if not deleted or b"data" not in found:
        return None
    return found[b"data"], found.get(b"filename", b"upload.csv").decode()


_UPLOAD_KEY = "authentix_upload:"
HELPDESK_ROLES = frozenset({StaffRole.HELPDESK, StaffRole.HELPDESK_ADMIN})
