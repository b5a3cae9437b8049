"""Allow one pending access request per person, organisation and service.

A partial unique index (PostgreSQL and SQLite both support ``WHERE``) closes the race in which
two "Request access" clicks arrive at once; the service checks first so that people see
"already requested" rather than an error.

Data safety: the index fails to build if duplicate pending requests already exist. Before
upgrading a database that has run 0004 in production, cancel duplicates, keeping the oldest:
``UPDATE access_requests SET status = 'cancelled' WHERE status = 'pending' AND id NOT IN
(SELECT min(id) FROM access_requests WHERE status = 'pending' GROUP BY user_id,
organisation_id, service_id)``. This migration does exactly that first. Downgrade drops the
index only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.execute(
        "UPDATE access_requests SET status = 'cancelled' WHERE status = 'pending' AND id NOT IN "
        "(SELECT min(id) FROM access_requests WHERE status = 'pending' "
        "GROUP BY user_id, organisation_id, service_id)"
    )
    op.create_index(
        "uq_access_requests_one_pending",
        "access_requests",
        ["user_id", "organisation_id", "service_id"],
        unique=True,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("uq_access_requests_one_pending", table_name="access_requests")
