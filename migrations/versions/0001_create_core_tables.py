"""Create the core tables: users, organisations, memberships, services and their roles,
access grants and the audit log (DESIGN.md §3).

Data safety: this is the first migration, so downgrade drops everything. Later migrations
must never drop a column holding data without copying it first.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 21:26:04.443667
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_actor_id_occurred_at", ["actor_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_event_occurred_at", ["event", "occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_target_id_occurred_at", ["target_id", "occurred_at"], unique=False
        )

    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "establishment",
                "local_authority",
                "multi_academy_trust",
                "department",
                name="organisation_type",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "closed",
                "proposed_to_open",
                "proposed_to_close",
                name="organisation_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("urn", sa.String(length=16), nullable=True),
        sa.Column("ukprn", sa.String(length=16), nullable=True),
        sa.Column("la_code", sa.String(length=8), nullable=True),
        sa.Column("group_uid", sa.String(length=16), nullable=True),
        sa.Column("establishment_type", sa.String(length=120), nullable=True),
        sa.Column("postcode", sa.String(length=16), nullable=True),
        sa.Column("local_authority_id", sa.Integer(), nullable=True),
        sa.Column("trust_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["organisations.id"],
            name=op.f("fk_organisations_local_authority_id_organisations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["trust_id"],
            ["organisations.id"],
            name=op.f("fk_organisations_trust_id_organisations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("group_uid", name=op.f("uq_organisations_group_uid")),
        sa.UniqueConstraint("la_code", name=op.f("uq_organisations_la_code")),
        sa.UniqueConstraint("public_id", name=op.f("uq_organisations_public_id")),
        sa.UniqueConstraint("urn", name=op.f("uq_organisations_urn")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organisations_local_authority_id"), ["local_authority_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_organisations_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_organisations_trust_id"), ["trust_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_organisations_ukprn"), ["ukprn"], unique=False)

    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("start_url", sa.String(length=2000), nullable=True),
        sa.Column(
            "status",
            sa.Enum("active", "disabled", name="service_status", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "redirect_uris",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "post_logout_redirect_uris",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("backchannel_logout_uri", sa.String(length=2000), nullable=True),
        sa.Column(
            "allowed_scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "grant_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=False),
        sa.Column(
            "jwks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("id_token_signed_response_alg", sa.String(length=16), nullable=False),
        sa.Column("access_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("id_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("refresh_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("require_mfa", sa.Boolean(), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("client_id", name=op.f("uq_services_client_id")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sub", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "invited", "active", "deactivated", name="user_status", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "staff_role",
            sa.Enum("helpdesk", "helpdesk_admin", name="staff_role", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(), nullable=True),
        sa.Column("password_compromised", sa.Boolean(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("sub", name=op.f("uq_users_sub")),
    )
    op.create_table(
        "access_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_access_grants_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_access_grants_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_access_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_grants")),
        sa.UniqueConstraint(
            "user_id",
            "organisation_id",
            "service_id",
            name=op.f("uq_access_grants_user_id_organisation_id_service_id"),
        ),
    )
    with op.batch_alter_table("access_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_grants_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_grants_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum("member", "approver", name="membership_role", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_memberships_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint(
            "user_id", "organisation_id", name=op.f("uq_memberships_user_id_organisation_id")
        ),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_memberships_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "service_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "organisation_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_roles_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_roles")),
        sa.UniqueConstraint("service_id", "code", name=op.f("uq_service_roles_service_id_code")),
    )
    op.create_table(
        "service_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_secrets_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_secrets")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_service_secrets_secret_hash")),
    )
    with op.batch_alter_table("service_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_secrets_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "access_grant_roles",
        sa.Column("access_grant_id", sa.Integer(), nullable=False),
        sa.Column("service_role_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_grant_id"],
            ["access_grants.id"],
            name=op.f("fk_access_grant_roles_access_grant_id_access_grants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_role_id"],
            ["service_roles.id"],
            name=op.f("fk_access_grant_roles_service_role_id_service_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "access_grant_id", "service_role_id", name=op.f("pk_access_grant_roles")
        ),
    )


def downgrade() -> None:
    op.drop_table("access_grant_roles")
    with op.batch_alter_table("service_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_secrets_service_id"))

    op.drop_table("service_secrets")
    op.drop_table("service_roles")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_organisation_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("access_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_grants_service_id"))
        batch_op.drop_index(batch_op.f("ix_access_grants_organisation_id"))

    op.drop_table("access_grants")
    op.drop_table("users")
    op.drop_table("services")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisations_ukprn"))
        batch_op.drop_index(batch_op.f("ix_organisations_trust_id"))
        batch_op.drop_index(batch_op.f("ix_organisations_name"))
        batch_op.drop_index(batch_op.f("ix_organisations_local_authority_id"))

    op.drop_table("organisations")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_target_id_occurred_at")
        batch_op.drop_index(batch_op.f("ix_audit_events_occurred_at"))
        batch_op.drop_index("ix_audit_events_event_occurred_at")
        batch_op.drop_index("ix_audit_events_actor_id_occurred_at")

    op.drop_table("audit_events")
