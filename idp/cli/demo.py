"""``seed-demo``: demo organisations, people and the six departmental services."""

from __future__ import annotations

import click
from flask import current_app

from idp.services import demo
from idp.services.transaction import transaction


@click.command("seed-demo")
def seed_demo() -> None:
    """Load the demo data (safe to repeat; development and test only)."""
    settings = current_app.extensions["settings"]
    if settings.is_production:
        raise click.ClickException("seed-demo publishes its passwords: never in production.")
    with transaction():
        report, _ = demo.seed()
    if report.created:
        click.echo(f"Demo data: created {len(report.created)} item(s).")
    else:
        click.echo("Demo data is already loaded: nothing to do.")
    base = settings.public_base_url
    click.echo(
        f"""
Sign in at {base}/sign-in with any of these (password: {demo.DEMO_PASSWORD}):
  sam.patel@hilltop-primary.example     approver at Hill Top Primary School
  alex.jones@hilltop-primary.example    staff at Hill Top Primary and Riverside Academy
  lee.wong@camden-council.example       approver at Camden (local authority)
  hana.okafor@education.example         helpdesk admin
ivy.chen@hilltop-primary.example is invited: her invitation is at {base}/dev/outbox
once the worker has sent it.
The demo services' client secrets are insecure-demo-client-secret-for-<client_id>."""
    )
