"""``create-service``: register a relying service (OIDC client) and print its secret once."""

from __future__ import annotations

import click


@click.command("create-service")
def create_service() -> None:
    """Register a service (not built yet)."""
