"""``create-user``: add a person from the command line (first set-up and support)."""

from __future__ import annotations

import click

from idp.models import StaffRole
from idp.services import users
from idp.services.transaction import transaction


@click.command("create-user")
@click.option("--email", required=True, help="The person's own email address.")
@click.option("--given-name", required=True)
@click.option("--family-name", required=True)
@click.option(
    "--staff-role",
    type=click.Choice([r.value for r in StaffRole]),
    default=None,
    help="Make them Secure Access helpdesk staff.",
)
def create_user(email: str, given_name: str, family_name: str, staff_role: str | None) -> None:
    """Create an invited user. They set their own password from their invitation email."""
    try:
        with transaction():
            user = users.create_user(
                email,
                given_name,
                family_name,
                actor="cli",
                staff_role=StaffRole(staff_role) if staff_role else None,
            )
    except (users.InvalidEmail, users.RoleMailboxRefused, users.EmailAlreadyUsed) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.email} (sub {user.sub}), status {user.status.value}.")
