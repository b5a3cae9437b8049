"""What the import commands share (``import-organisations``, ``import-authentix``).

Both are thin shells around an import service: a progress bar on stderr (so stdout stays a
clean summary that can be piped or diffed), the operator's name for the audit log, the same
way of stopping on a file that cannot be read or a database failure part-way, and the same
list of rejected rows. Rejected rows do not fail a command, since the rest of the file was
imported and the list says what to fix; only a file that cannot be read at all exits 1.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from idp.services.csv_import import ImportFileError

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # click does not export the type publicly

SHOW_ERRORS = 50  # enough to see the pattern; the rest are counted, not printed


def import_command(
    name: str, dry_run_help: str
) -> Callable[[Callable[[Path, bool], None]], click.Command]:
    """``@import_command("import-x", ...)`` on ``def f(path: Path, dry_run: bool)``: a command
    taking a file PATH and ``--dry-run``, run inside the app context."""

    def decorate(f: Callable[[Path, bool], None]) -> click.Command:
        f = with_appcontext(f)
        f = click.option("--dry-run", is_flag=True, help=dry_run_help)(f)
        f = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))(f)
        return click.command(name)(f)

    return decorate


class Progress:
    """Adapts an import service's (done, total) callback to a click progress bar on stderr.

    The bar is created on the first call because only the service knows the total (it counts
    the file's lines while checking its encoding).
    """

    def __init__(self, stack: ExitStack, label: str) -> None:
        self.stack = stack
        self.label = label
        self.bar: ProgressBar[int] | None = None
        self.length = 0
        self.shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.length = max(total or 0, done, 1)
            bar: ProgressBar[int] = click.progressbar(
                length=self.length,
                label=self.label,
                file=sys.stderr,
                show_pos=True,
            )
            self.bar = self.stack.enter_context(bar)
        # The last call has done == total; the estimate may be high, so finish the bar exactly.
        target = self.length if total is not None and done >= total else min(done, self.length)
        self.bar.update(target - self.shown)
        self.shown = target


def actor() -> str:
    """Who ran the command, for the audit log: the operating-system user, if there is one."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


@contextmanager
def import_run(label: str) -> Iterator[Progress]:
    """Run an import with a progress bar; a file that cannot be read, or a database failure
    part-way, becomes a plain "Error: ..." and exit 1 (click's), not a traceback."""
    with ExitStack() as stack:
        try:
            yield Progress(stack, label)
        except ImportFileError as exc:
            raise click.ClickException(str(exc)) from exc
        except SQLAlchemyError as exc:
            # The database went away, or another import raced this one: say what that means
            # for the data.
            raise click.ClickException(
                f"the import stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}\n"
                "Batches written before the failure are kept and the failed batch was rolled "
                "back; re-run the same file to finish."
            ) from exc


def echo_rejected(errors: Sequence[Any], where: Callable[[Any], str | None]) -> None:
    """List the first :data:`SHOW_ERRORS` rejected rows as ``line N (where): reason``; count
    the rest. ``where`` names the row's URN or column, or None."""
    if not errors:
        return
    click.echo(f"Rejected rows ({len(errors)}):")
    for error in errors[:SHOW_ERRORS]:
        place = where(error)
        click.echo(f"  line {error.line}{f' ({place})' if place else ''}: {error.reason}")
    if len(errors) > SHOW_ERRORS:
        click.echo(f"  ... and {len(errors) - SHOW_ERRORS} more")
