"""Migrations are the only source of the schema: one head, models agree, and they reverse."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from idp import create_app
from idp.extensions import db
from idp.models import Base
from tests.conftest import BACKEND, SLOT, worker_number

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(VERSIONS.parent))


def test_there_is_exactly_one_head():
    assert len(script_directory().get_heads()) == 1


def test_revision_ids_match_their_numbered_file_names_and_form_one_chain():
    previous = None
    for path in sorted(VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")):
        source = path.read_text()
        number = path.name[:4]
        assert re.search(rf"^revision = ['\"]{number}['\"]", source, re.M), path.name
        expected_down = repr(previous) if previous else "None"
        down = re.search(r"^down_revision = (.+)$", source, re.M)
        assert down, path.name
        assert down.group(1).replace('"', "'") == expected_down, path.name
        previous = number


@pytest.fixture
def scratch_app(settings, tmp_path, worker_id) -> Iterator[Flask]:
    """An app on a database of its own, so migrating down does not disturb other tests."""
    if BACKEND == "server":
        base = make_url(os.environ["IDP_TEST_DATABASE_URL"]).set(drivername="postgresql+psycopg")
        name = f"idp_migrations_{SLOT}_{worker_number(worker_id)}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
    app = create_app(settings.model_copy(update={"database_url": url}))
    with app.app_context():
        yield app
        db.engine.dispose()
    if BACKEND == "server":
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# SQLite cannot reflect expression indexes, so Alembic skips the search indexes of
# idp/models/search.py there (with this warning); PostgreSQL compares them in full.
@pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning"
)
def test_models_and_migrations_agree(scratch_app):
    upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "models differ from migrations; write a migration:\n" + "\n".join(
        map(str, diff)
    )


def test_upgrade_downgrade_upgrade_keeps_data(scratch_app):
    upgrade()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (sub, email, given_name, family_name, status, "
                "password_compromised, created_at, updated_at) VALUES "
                "('3f0c9c1e-0000-4000-8000-000000000001', 'ada@school.example', 'Ada', "
                "'Lovelace', 'active', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    heads = script_directory().get_heads()
    revisions = list(script_directory().walk_revisions())
    assert heads
    if len(revisions) > 1:
        downgrade(revision="-1")
        upgrade()
    assert "users" in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM users")).scalar_one() == "ada@school.example"
    downgrade(revision="base")
    assert "users" not in inspect(db.engine).get_table_names()
    upgrade()
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
