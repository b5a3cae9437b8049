"""``import-organisations``: load the GIAS register (establishments and local authorities)."""

from __future__ import annotations

import click


@click.command("import-organisations")
def import_organisations() -> None:
    """Import organisations from a GIAS-format CSV file (not built yet)."""
    raise click.ClickException("not built yet")
