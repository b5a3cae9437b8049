"""Command-line tools: ``flask --app idp <command>`` or the ``idp`` script."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup


def init_app(app: Flask) -> None:
    """Commands are added here as each capability lands."""


def main() -> None:
    from idp import create_app

    cli = FlaskGroup(create_app=lambda: create_app(), help="Secure Access identity provider.")
    cli.main()


__all__ = ["click", "main"]
