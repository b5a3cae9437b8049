"""``import-organisations``: load the GIAS register (establishments and local authorities).

The command is a thin shell around :mod:`idp.services.organisation_import`: it owns the
progress bar (stderr, so stdout stays a clean summary that can be piped or diffed), the
wording of the summary and the exit codes. Rejected rows do not fail the command, since the
rest of the file was imported and the list says what to fix; only a file that cannot be
read at all exits 1.
"""

from __future__ import annotations

import getpass
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from idp.services import organisation_import

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # click does not export the type publicly

SHOW_ERRORS = 50  # enough to see the pattern; the rest are counted, not printed


class _Progress:
    """Adapts the service's (done, total) callback to a click progress bar on stderr.

    The bar is created on the first call because only the service knows the total (it counts
    the file's lines while checking its encoding).
    """

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.bar: ProgressBar[int] | None = None
        self.length = 0
        self.shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.length = max(total or 0, done, 1)
            bar: ProgressBar[int] = click.progressbar(
                length=self.length,
                label="Importing organisations",
                file=sys.stderr,
                show_pos=True,
            )
            self.bar = self.stack.enter_context(bar)
        # The last call has done == total; the estimate may be high, so finish the bar exactly.
        target = self.length if total is not None and done >= total else min(done, self.length)
        self.bar.update(target - self.shown)
        self.shown = target


def _actor() -> str:
    """Who ran the command, for the audit log: the operating-system user, if there is one."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


@click.command("import-organisations")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read and check the whole file and report what would change, writing nothing.",
)
@with_appcontext
def import_organisations(path: Path, dry_run: bool) -> None:
    """Import establishments and local authorities from a GIAS-format CSV file at PATH.

    Safe to re-run: rows are matched by URN (establishments) and LA code (local authorities),
    and only differences are written. Malformed rows are listed and skipped.
    """
    with ExitStack() as stack:
        try:
            result = organisation_import.import_organisations(
                path, dry_run=dry_run, progress=_Progress(stack), actor=_actor()
            )
        except organisation_import.ImportFileError as exc:
            # ClickException prints "Error: ..." to stderr and exits 1.
            raise click.ClickException(str(exc)) from exc
        except SQLAlchemyError as exc:
            # The database failed part-way (it went away, or another import raced us). Say what
            # that means for the data rather than print a traceback.
            raise click.ClickException(
                f"the import stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}\n"
                "Batches written before the failure are kept and the failed batch was rolled "
                "back; re-run the same file to finish."
            ) from exc
    for line in result.summary():
        click.echo(line)
    if result.errors:
        click.echo(f"Rejected rows ({result.rejected}):")
        for error in result.errors[:SHOW_ERRORS]:
            urn = f" (URN {error.urn})" if error.urn else ""
            click.echo(f"  line {error.line}{urn}: {error.reason}")
        if result.rejected > SHOW_ERRORS:
            click.echo(f"  ... and {result.rejected - SHOW_ERRORS} more")
