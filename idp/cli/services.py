"""Relying services and signing keys from the command line.

- ``create-service``: register a service (OIDC client) and print its secret once (G04).
- ``rotate-service-secret``: add a second valid secret, optionally expiring the older ones.
- ``revoke-service-secret``: delete one secret at once (a leak).
- ``load-services``: apply the declarative ``config/services/*.toml`` files (idempotent).
- ``ensure-keys``: create the signing keys at first start (safe to repeat).
- ``rotate-keys`` / ``prune-keys``: signing-key rotation with overlap (H04, OIDC Core §10.1.1).

Each command is a thin shell around :mod:`idp.services.clients` or :mod:`idp.oidc.keys`: it
parses options, runs one unit of work and prints the outcome. A secret is printed once, to
stdout, and never logged or audited.
"""

from __future__ import annotations

import getpass
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from idp.models.base import utcnow
from idp.oidc import keys
from idp.services import clients
from idp.services.transaction import transaction


def _actor() -> str:
    """Who ran the command, for the audit log: the operating-system user, if there is one."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


def _fail(error: clients.ServiceError) -> click.ClickException:
    problems = getattr(error, "problems", None) or [str(error)]
    return click.ClickException("\n".join(["not saved:", *(f"  - {p}" for p in problems)]))


def _show_secret(client_id: str, secret: str) -> None:
    click.echo(f"client_id:     {client_id}")
    click.echo(f"client_secret: {secret}")
    click.secho(
        "Store this secret now (for example in the service's secret manager): it is not kept "
        "and will not be shown again.",
        fg="yellow",
        err=True,
    )


@click.command("create-service")
@click.option("--client-id", required=True, help="Letters, digits, '.', '_' or '-' (3-64).")
@click.option("--name", required=True, help="The service's name, as people see it.")
@click.option(
    "--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable)."
)
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Exact post-logout redirect URI (repeatable).",
)
@click.option("--backchannel-logout-uri", default=None, help="Back-channel logout URI.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=clients.DEFAULT_SCOPES,
    show_default=True,
    type=click.Choice(clients.SUPPORTED_SCOPES),
    help="Allowed scope (repeatable).",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    default=clients.DEFAULT_GRANT_TYPES,
    show_default=True,
    type=click.Choice(clients.SUPPORTED_GRANT_TYPES),
    help="Allowed grant (repeatable).",
)
@click.option(
    "--auth-method",
    default="client_secret_basic",
    show_default=True,
    type=click.Choice(clients.TOKEN_ENDPOINT_AUTH_METHODS),
    help="How the service authenticates at the token endpoint.",
)
@click.option(
    "--jwks-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The service's public JWKS (JSON), for --auth-method private_key_jwt.",
)
@click.option(
    "--id-token-alg",
    default="RS256",
    show_default=True,
    type=click.Choice(clients.SIGNING_ALGS),
    help="Algorithm for this service's ID tokens.",
)
@click.option("--require-mfa", is_flag=True, help="Every sign-in to this service needs MFA.")
@click.option("--description", default="", help="What the service is for.")
@click.option("--start-url", default=None, help="Where people start using the service.")
@with_appcontext
def create_service(
    client_id: str,
    name: str,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    backchannel_logout_uri: str | None,
    scopes: tuple[str, ...],
    grant_types: tuple[str, ...],
    auth_method: str,
    jwks_file: Path | None,
    id_token_alg: str,
    require_mfa: bool,
    description: str,
    start_url: str | None,
) -> None:
    """Register a relying service and print its client secret once."""
    jwks: dict[str, Any] | None = None
    if jwks_file is not None:
        try:
            jwks = json.loads(jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise click.ClickException(f"{jwks_file} is not a JSON file: {error}") from None
    try:
        with transaction():
            service, secret = clients.register_service(
                client_id,
                name,
                redirect_uris=redirect_uris,
                post_logout_redirect_uris=post_logout_redirect_uris,
                backchannel_logout_uri=backchannel_logout_uri,
                allowed_scopes=scopes,
                grant_types=grant_types,
                token_endpoint_auth_method=auth_method,
                jwks=jwks,
                require_mfa=require_mfa,
                description=description,
                start_url=start_url,
                id_token_signed_response_alg=id_token_alg,
                actor=_actor(),
            )
            registered = service.client_id
    except clients.ServiceError as error:
        raise _fail(error) from None
    click.echo(f"Registered {name} ({registered}).", err=True)
    if secret is None:
        click.echo(f"client_id:     {registered}")
        click.echo("It authenticates with private_key_jwt: there is no client secret.", err=True)
    else:
        _show_secret(registered, secret)


@click.command("rotate-service-secret")
@click.argument("client_id")
@click.option("--label", default="rotated", show_default=True, help="A note for the new secret.")
@click.option(
    "--expire-old-in-hours",
    type=click.IntRange(min=0),
    default=None,
    help="Let the service's other secrets work this many more hours, then refuse them "
    "(0: refuse them now). Without it they stay valid until revoked.",
)
@with_appcontext
def rotate_service_secret(client_id: str, label: str, expire_old_in_hours: int | None) -> None:
    """Add a new client secret for CLIENT_ID (the old ones keep working) and print it once."""
    actor = _actor()
    try:
        with transaction():
            service = clients.get_service(client_id)
            old = [(s.id, s.expires_at) for s in service.secrets]
            secret = clients.add_secret(service, label=label, actor=actor)
            if expire_old_in_hours is not None:
                until = utcnow() + timedelta(hours=expire_old_in_hours)
                for secret_id, expires_at in old:
                    if expires_at is None or expires_at > until:
                        clients.expire_secret(service, secret_id, until, actor=actor)
            listing = [(s.id, s.label, s.created_at, s.expires_at) for s in service.secrets]
    except clients.ServiceError as error:
        raise _fail(error) from None
    _show_secret(client_id, secret)
    click.echo("Secrets now held (hashes only):", err=True)
    for secret_id, row_label, created_at, expires_at in listing:
        until_text = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "no expiry"
        click.echo(
            f"  id {secret_id}: {row_label or '-'}, created {created_at:%Y-%m-%d %H:%M} UTC, "
            f"{until_text}",
            err=True,
        )


@click.command("revoke-service-secret")
@click.argument("client_id")
@click.argument("secret_id", type=int)
@with_appcontext
def revoke_service_secret(client_id: str, secret_id: int) -> None:
    """Delete secret SECRET_ID of CLIENT_ID now (ids are listed by rotate-service-secret)."""
    try:
        with transaction():
            clients.revoke_secret(clients.get_service(client_id), secret_id, actor=_actor())
    except clients.ServiceError as error:
        raise _fail(error) from None
    click.echo(f"Revoked secret {secret_id} of {client_id}.")


@click.command("load-services")
@click.argument(
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("config/services"),
)
@with_appcontext
def load_services(folder: Path) -> None:
    """Register or update the services described by FOLDER/*.toml (default config/services).

    Secrets come from the environment variables the files name (client_secret_env). Nothing
    is written unless every file is valid. Safe to run again and again.
    """
    try:
        with transaction():
            report = clients.load_service_files(folder, actor=_actor())
    except clients.ServiceError as error:
        raise _fail(error) from None
    for client_id in report.created:
        click.echo(f"created   {client_id}")
    for client_id, fields in report.updated.items():
        click.echo(f"updated   {client_id}: {', '.join(fields)}")
    for client_id in report.unchanged:
        click.echo(f"unchanged {client_id}")
    for client_id in report.secrets_added:
        click.echo(f"secret    {client_id}: the secret from the environment was added")


@click.command("ensure-keys")
@with_appcontext
def ensure_keys() -> None:
    """Create any missing signing keys (an active and a next key per algorithm)."""
    created = keys.ensure_keys(actor=_actor())
    click.echo(f"Created {len(created)} signing key(s)." if created else "All keys present.")


@click.command("rotate-keys")
@click.option(
    "--alg",
    default=keys.DEFAULT_ALG,
    show_default=True,
    type=click.Choice(keys.SIGNING_ALGS),
    help="Which algorithm's key to rotate.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Promote the next key even if relying services may not have fetched it yet "
    "(emergencies only, e.g. a leaked key).",
)
@with_appcontext
def rotate_keys(alg: str, force: bool) -> None:
    """Rotate the signing key: next → active → retired (published until tokens expire)."""
    result = keys.rotate(alg, force=force, actor=_actor())
    if result.activated is None:
        click.echo(
            f"{alg}: the next key {result.next_kid} is published but may sign only from "
            f"{result.ready_at:%Y-%m-%d %H:%M:%S} UTC. Run rotate-keys again then "
            "(or use --force in an emergency)."
        )
        raise SystemExit(75)  # EX_TEMPFAIL: try again later
    click.echo(f"{alg}: {result.activated} now signs.")
    for kid in result.retired:
        click.echo(
            f"{alg}: {kid} retired; it stays in the JWKS until "
            f"{result.unpublish_after:%Y-%m-%d %H:%M:%S} UTC."
        )
    click.echo(f"{alg}: {result.next_kid} published as the next key.")


@click.command("prune-keys")
@with_appcontext
def prune_keys() -> None:
    """Delete retired signing keys whose tokens have all expired."""
    removed = keys.prune(actor=_actor())
    for kid in removed:
        click.echo(f"removed {kid}")
    if not removed:
        click.echo("Nothing to remove.")
