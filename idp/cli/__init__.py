"""Command-line tools: ``flask --app idp <command>``, or the ``idp`` script.

One module per topic; each command is registered here so the whole CLI is visible at once.
"""

from __future__ import annotations

from flask import Flask
from flask.cli import FlaskGroup

from idp.cli import authentix, demo, organisations, services, users, worker


def init_app(app: Flask) -> None:
    for command in (
        users.create_user,
        services.create_service,
        services.rotate_service_secret,
        services.revoke_service_secret,
        services.load_services,
        services.ensure_keys,
        services.rotate_keys,
        services.prune_keys,
        organisations.import_organisations,
        authentix.import_authentix,
        demo.seed_demo,
        worker.worker,
    ):
        app.cli.add_command(command)


def main() -> None:
    from idp import create_app

    FlaskGroup(create_app=lambda: create_app(), help="Secure Access identity provider.").main()
