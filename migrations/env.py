"""Alembic environment: runs migrations against the app's own database engine."""

from __future__ import annotations

from alembic import context
from flask import current_app

from idp.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = current_app.extensions["migrate"].db.engine
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline migrations are not supported: run against a database.")
run_migrations_online()
