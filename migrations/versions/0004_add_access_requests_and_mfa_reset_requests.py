"""Add access requests, MFA reset requests (four eyes) and each service's access policy.

Data safety: new tables and one new column. Existing services get the access policy
"granted" (only people an approver gave access may sign in), the secure default. Downgrade
drops the tables, losing pending requests and the record of past decisions (the audit log
keeps the events).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:46:01.611118
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column(
            "requested_roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "rejected",
                "cancelled",
                name="request_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_access_requests_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_access_requests_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_access_requests_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_access_requests_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_requests")),
        sa.UniqueConstraint("public_id", name=op.f("uq_access_requests_public_id")),
    )
    op.create_index(
        "ix_access_requests_organisation_id_status",
        "access_requests",
        ["organisation_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_access_requests_user_id_status", "access_requests", ["user_id", "status"], unique=False
    )
    op.create_table(
        "mfa_reset_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("identity_check", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "rejected",
                "cancelled",
                name="request_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_mfa_reset_requests_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_mfa_reset_requests_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_mfa_reset_requests_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_reset_requests")),
        sa.UniqueConstraint("public_id", name=op.f("uq_mfa_reset_requests_public_id")),
    )
    op.create_index(
        "ix_mfa_reset_requests_status_created_at",
        "mfa_reset_requests",
        ["status", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_mfa_reset_requests_user_id"), "mfa_reset_requests", ["user_id"], unique=False
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "access_policy",
                sa.Enum("granted", "open", name="access_policy", native_enum=False, length=32),
                nullable=False,
                server_default="granted",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("access_policy")
    op.drop_index(op.f("ix_mfa_reset_requests_user_id"), table_name="mfa_reset_requests")
    op.drop_index("ix_mfa_reset_requests_status_created_at", table_name="mfa_reset_requests")
    op.drop_table("mfa_reset_requests")
    op.drop_index("ix_access_requests_user_id_status", table_name="access_requests")
    op.drop_index("ix_access_requests_organisation_id_status", table_name="access_requests")
    op.drop_table("access_requests")
