"""Issue 7: a service's access policy in the registry: "granted" by default, "open" on request,
from the Python API and from ``config/services/*.toml``; anything else is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from idp.models import AccessPolicy
from idp.services import clients
from idp.services.transaction import transaction

URI = "https://portal.school.example/callback"
SECRET = {"PORTAL_SECRET": "insecure-test-secret-for-the-portal-service-0001"}


def register(client_id: str, **extra: object):
    with transaction():
        service, _ = clients.register_service(
            client_id,
            "Portal",
            redirect_uris=[URI],
            allowed_scopes=["openid"],
            grant_types=["authorization_code"],
            **extra,
        )
    return service


def test_granted_is_the_default_and_open_can_be_asked_for(app):
    assert register("portal-granted").access_policy is AccessPolicy.GRANTED
    assert register("portal-open", access_policy="open").access_policy is AccessPolicy.OPEN


def test_an_unknown_policy_is_refused(app):
    with pytest.raises(clients.ServiceValidationError, match="access_policy must be one of"):
        register("portal-odd", access_policy="everyone")


def test_the_toml_file_sets_and_changes_the_policy(app, tmp_path: Path):
    file = tmp_path / "portal.toml"
    file.write_text(
        'client_id = "portal-file"\nname = "Portal"\nredirect_uris = ["' + URI + '"]\n'
        'allowed_scopes = ["openid"]\ngrant_types = ["authorization_code"]\n'
        'client_secret_env = "PORTAL_SECRET"\n'
        'access_policy = "open"\n'
    )
    with transaction():
        report = clients.load_service_files(tmp_path, environ=SECRET)
    assert report.changed
    assert clients.get_service("portal-file").access_policy is AccessPolicy.OPEN
    file.write_text(file.read_text().replace('access_policy = "open"\n', ""))
    with transaction():
        clients.load_service_files(tmp_path, environ=SECRET)
    assert clients.get_service("portal-file").access_policy is AccessPolicy.GRANTED
