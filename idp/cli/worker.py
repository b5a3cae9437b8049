"""``worker``: sends what the durable outbox holds (email, back-channel logout), with retries."""

from __future__ import annotations

import click


@click.command("worker")
def worker() -> None:
    """Run the background worker (not built yet)."""
    click.echo("worker: nothing to do yet")
