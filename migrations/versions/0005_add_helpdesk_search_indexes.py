"""Add the helpdesk console's search indexes (issue 8, K02).

PostgreSQL: enables pg_trgm and builds trigram GIN indexes on people's emails, on a search
key of their names, and on a search key of organisation names, so "find anyone in a million"
by a fragment stays fast. The key expressions are written out here exactly as
``idp/models/search.py`` builds them; PostgreSQL uses an expression index only when the query
repeats the expression.

SQLite has no pg_trgm: its search falls back to LIKE scans, so it gets only the plain email
index (SQLAlchemy cannot reflect SQLite expression indexes, and Alembic skips comparing the
models' expression indexes there, so models and migrations still agree).

Data safety: indexes only; no data changes. On a large PostgreSQL database build them with
``CREATE INDEX CONCURRENTLY`` by hand first if writes must not wait (this migration then
finds them). Downgrade drops the indexes; the pg_trgm extension is left installed, since
something else may use it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _key(expression: str) -> str:
    """The search key of ``expression`` (see idp.models.search.search_key)."""
    key = f"lower({expression})"
    for char in (" ", "-", "''", "\u2019", ".", ","):
        key = f"replace({key}, '{char}', '')"
    return key


INDEXES = (
    ("ix_users_name_key_trgm", "users", _key("given_name || family_name")),
    ("ix_users_email_trgm", "users", "email"),
    ("ix_organisations_name_key_trgm", "organisations", _key("name")),
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, expression in INDEXES:
        if not postgres and expression != "email":
            continue  # SQLite cannot reflect expression indexes; its search scans anyway
        using = "USING gin " if postgres else ""
        ops = " gin_trgm_ops" if postgres else ""
        op.execute(
            sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {using}({expression}{ops})")
        )


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
