"""``create-user``: add a person from the command line (support and first set-up)."""

from __future__ import annotations

import click


@click.command("create-user")
def create_user() -> None:
    """Create a user (not built yet)."""
