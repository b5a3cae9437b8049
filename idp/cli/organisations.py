"""``import-organisations``: load the GIAS register (establishments and local authorities).

The command is a thin shell around :mod:`idp.services.organisation_import`: it owns the
wording of the summary; the progress bar (stderr, so stdout stays a clean summary that can be
piped or diffed), the exit codes and the list of rejected rows are shared with
``import-authentix`` in :mod:`idp.cli.imports`. Rejected rows do not fail the command, since
the rest of the file was imported and the list says what to fix; only a file that cannot be
read at all exits 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from idp.cli.imports import actor, echo_rejected, import_command, import_run
from idp.services import organisation_import


@import_command(
    "import-organisations",
    dry_run_help="Read and check the whole file and report what would change, writing nothing.",
)
def import_organisations(path: Path, dry_run: bool) -> None:
    """Import establishments and local authorities from a GIAS-format CSV file at PATH.

    Safe to re-run: rows are matched by URN (establishments) and LA code (local authorities),
    and only differences are written. Malformed rows are listed and skipped.
    """
    with import_run("Importing organisations") as progress:
        result = organisation_import.import_organisations(
            path, dry_run=dry_run, progress=progress, actor=actor()
        )
    for line in result.summary():
        click.echo(line)
    echo_rejected(result.errors, lambda error: f"URN {error.urn}" if error.urn else None)
