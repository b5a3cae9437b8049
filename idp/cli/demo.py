"""``seed-demo``: demo organisations, people and the six departmental services."""

from __future__ import annotations

import click


@click.command("seed-demo")
def seed_demo() -> None:
    """Load demo data (not built yet)."""
