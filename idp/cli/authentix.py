"""``import-authentix``: move schools' staff off Authentix (issue 8, "Migration off Authentix").

A thin shell around :mod:`idp.services.authentix_import`, shaped like ``import-organisations``:
a progress bar on stderr, a plain summary on stdout, the rejected rows with their lines, and
exit 1 only when the file cannot be read at all (rejected rows do not fail the command: the
rest was imported, and a re-run after fixing them completes the job).
"""

from __future__ import annotations

from pathlib import Path

import click

from idp.cli.imports import SHOW_ERRORS, actor, echo_rejected, import_command, import_run
from idp.services import authentix_import


@import_command(
    "import-authentix",
    dry_run_help="Check the whole file and report what would change, writing and sending nothing.",
)
def import_authentix(path: Path, dry_run: bool) -> None:
    """Import establishments' staff from an Authentix CSV export at PATH.

    Columns: URN, Email, Given name, Family name, Approver (yes/no), Services
    (client-id or client-id:role+role, separated by semicolons), and optionally School name.
    Creates invited accounts, memberships and service access, and emails each new person one
    invitation. Safe to re-run: nothing is changed or sent twice. Passwords are never imported.
    """
    with import_run("Importing staff") as progress:
        result = authentix_import.import_staff(
            path, dry_run=dry_run, progress=progress, actor=actor()
        )
    for line in result.summary():
        click.echo(line)
    if dry_run and result.plans:
        click.echo("What would change:")
        for plan in result.plans[:SHOW_ERRORS]:
            click.echo(f"  line {plan.line} {plan.email} at {plan.urn}: {', '.join(plan.changes)}")
        more = len(result.plans) - SHOW_ERRORS + result.plans_left_off
        if more > 0:
            click.echo(f"  ... and {more} more rows")
    echo_rejected(result.errors, lambda error: error.column)
