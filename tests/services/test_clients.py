"""The service registry: G04 (client secrets), F01/E03 (redirect URIs), declarative files, CLI."""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from idp.extensions import db
from idp.models import AuditEvent, Service, ServiceSecret, ServiceStatus
from idp.models.base import utcnow
from idp.oidc import keys
from idp.services import clients, crypto

CALLBACK = "https://collect.education.gov.uk/auth/callback"


def register(client_id: str = "collect", **overrides: Any) -> tuple[Service, str | None]:
    values: dict[str, Any] = {
        "redirect_uris": [CALLBACK],
        "allowed_scopes": ["openid", "profile", "email"],
        "grant_types": ["authorization_code", "refresh_token"],
    }
    values.update(overrides)
    service, secret = clients.register_service(client_id, "Collect", **values)
    db.session.commit()
    return service, secret


def everything_stored() -> str:
    """Every value in the tables a secret could leak into, as one string."""
    chunks: list[str] = []
    for table in ("services", "service_secrets", "audit_events"):
        for row in db.session.execute(text(f"SELECT * FROM {table}")):
            chunks += [str(value) for value in row]
    return "\n".join(chunks)


def events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


# -- G04: secrets ---------------------------------------------------------------------------


def test_the_secret_is_returned_once_and_only_its_keyed_hash_is_stored(app: Flask) -> None:
    service, secret = register()

    assert secret is not None
    assert len(secret) >= 43
    (row,) = service.secrets
    assert row.secret_hash == crypto.keyed_hash(secret)
    assert secret not in everything_stored()
    (registered,) = events("service.registered")
    assert registered.target_id == "collect"
    assert registered.details["redirect_uris"] == [CALLBACK]
    assert len(events("service.secret_added")) == 1


def test_authentication_accepts_the_secret_and_nothing_else(app: Flask) -> None:
    _, secret = register()
    assert secret is not None

    found = clients.authenticate_client_secret("collect", secret)
    assert found is not None
    assert found.client_id == "collect"
    for client_id, attempt in [
        ("collect", secret[:-1] + ("A" if secret[-1] != "A" else "B")),
        ("collect", secret.upper()),
        ("collect", ""),
        ("collect", secret + "x" * 600),
        ("other", secret),
        ("", secret),
    ]:
        assert clients.authenticate_client_secret(client_id, attempt) is None


def test_the_check_compares_every_stored_hash_in_constant_time(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No early exit: each stored hash meets hmac.compare_digest, even after a match."""
    service, first = register()
    clients.add_secret(service)
    clients.add_secret(service)
    db.session.commit()
    compared: list[str] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert first is not None
    assert clients.authenticate_client_secret("collect", first) is not None

    stored = {row.secret_hash for row in service.secrets}
    assert len(stored) == 3
    assert set(compared) == stored  # the first secret matched; the other two were still checked


def test_two_secrets_are_valid_during_rotation_and_a_revoked_one_is_refused(app: Flask) -> None:
    service, old = register()
    new = clients.add_secret(service, label="rotated")
    db.session.commit()
    assert old is not None
    assert old != new

    assert clients.authenticate_client_secret("collect", old) is not None
    assert clients.authenticate_client_secret("collect", new) is not None

    old_id = next(s.id for s in service.secrets if s.label == "initial")
    clients.revoke_secret(service, old_id)
    db.session.commit()
    assert clients.authenticate_client_secret("collect", old) is None
    assert clients.authenticate_client_secret("collect", new) is not None
    (revoked,) = events("service.secret_revoked")
    assert revoked.details["secret_id"] == old_id
    with pytest.raises(clients.SecretNotFound):
        clients.revoke_secret(service, old_id)


def test_an_expired_secret_is_refused(app: Flask) -> None:
    service, secret = register()
    assert secret is not None
    ends = utcnow() + timedelta(hours=1)
    clients.expire_secret(service, service.secrets[0].id, ends)
    db.session.commit()

    assert clients.authenticate_client_secret("collect", secret, now=ends - timedelta(seconds=1))
    assert clients.authenticate_client_secret("collect", secret, now=ends) is None


def test_a_disabled_service_is_refused(app: Flask) -> None:
    service, secret = register()
    assert secret is not None
    service.status = ServiceStatus.DISABLED
    db.session.commit()

    assert clients.authenticate_client_secret("collect", secret) is None
    assert clients.find_service("collect") is None
    assert clients.find_service("collect", active_only=False) is service


def test_secrets_never_reach_the_audit_log(app: Flask) -> None:
    service, first = register()
    second = clients.add_secret(service)
    db.session.commit()

    details = json.dumps([e.details for e in db.session.scalars(select(AuditEvent))])
    assert first is not None
    assert first not in details
    assert second not in details
    assert crypto.keyed_hash(second) not in details


def private_key_jwks() -> dict[str, Any]:
    key = keys._new_jwk("ES256")
    return {"keys": [{**key.as_dict(private=False), "kid": "rp-1"}]}


def test_private_key_jwt_services_register_public_keys_and_get_no_secret(app: Flask) -> None:
    service, secret = register(
        token_endpoint_auth_method="private_key_jwt", jwks=private_key_jwks()
    )

    assert secret is None
    assert service.secrets == []
    assert service.jwks is not None
    assert service.jwks["keys"][0]["kid"] == "rp-1"
    with pytest.raises(clients.ServiceValidationError):
        clients.add_secret(service)


def test_a_private_key_in_a_jwks_is_refused(app: Flask) -> None:
    key = keys._new_jwk("ES256")
    with pytest.raises(clients.ServiceValidationError, match="private"):
        register(
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=True)]},
        )


# -- registration rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.school.uk/cb",
        "https://app.school.uk/cb?x=1",
        "https://app.school.uk:8443/auth/callback",
        "http://127.0.0.1:8080/cb",
        "http://localhost:5001/auth/callback",
        "http://[::1]/cb",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert clients.uri_problems(uri, production=False) == []


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.school.uk/cb#f",  # fragment
        "https://app.school.uk/cb#",
        "https://*.school.uk/cb",  # wildcards
        "https://app.school.uk/*",
        "http://app.school.uk/cb",  # http off loopback
        "https://app.school.uk@evil.com/cb",  # user-info
        "https://app.school.uk%40evil.com/cb",
        "https://evil.com\\@app.school.uk/cb",  # backslash
        "https://app.school.uk/cb/../evil",  # dot segments
        "https://app.school.uk/cb/..;/evil",
        "https://app.school.uk/cb;..;/",
        "https://app.school.uk/./cb",
        "/cb",  # relative
        "//app.school.uk/cb",
        "app.school.uk/cb",
        "https:///cb",
        "HTTPS://app.school.uk/cb",
        "javascript:alert(1)",
        "com.example.app:/cb",  # custom schemes are not offered
        "https://app.school.uk/c b",
        "https://app.school.uk/cb\n",
        "https://app.school.uk:99999/cb",
        "https://app.school.uk:0/cb",
        "https://exämple.uk/cb",
        "https://app_school.uk/cb",
        "",
        "https://app.school.uk/" + "a" * 2000,
    ],
)
def test_unacceptable_redirect_uris(app: Flask, uri: str) -> None:
    assert clients.uri_problems(uri, production=False)
    with pytest.raises(clients.ServiceValidationError, match="redirect_uri"):
        register(redirect_uris=[uri])


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1/cb", "http://localhost/cb", "https://localhost/cb"]
)
def test_loopback_redirect_uris_are_refused_in_production(uri: str) -> None:
    assert clients.uri_problems(uri, production=True)


def test_redirect_uris_are_stored_verbatim(app: Flask) -> None:
    uris = ["https://app.school.uk/cb?x=1&y=%2F", "https://App.School.uk/Callback"]
    service, _ = register(redirect_uris=uris, post_logout_redirect_uris=["https://app.school.uk/"])
    db.session.expire_all()

    assert db.session.get(Service, service.id).redirect_uris == uris  # type: ignore[union-attr]


@pytest.mark.parametrize("client_id", ["ab", "has space", "-leading", "a/b", "é-client", "x" * 65])
def test_client_id_charset(app: Flask, client_id: str) -> None:
    with pytest.raises(clients.ServiceValidationError, match="client_id"):
        register(client_id)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"allowed_scopes": ["openid", "admin"]}, "unsupported scopes"),
        ({"allowed_scopes": ["profile"]}, "must include openid"),
        (
            {"allowed_scopes": ["openid", "offline_access"], "grant_types": ["authorization_code"]},
            "offline_access",
        ),
        ({"grant_types": ["implicit"]}, "unsupported grant_types"),
        ({"grant_types": ["password"]}, "unsupported grant_types"),
        ({"grant_types": ["refresh_token"]}, "needs the authorization_code grant"),
        ({"grant_types": []}, "must not be empty"),
        ({"redirect_uris": []}, "at least one redirect_uri"),
        ({"redirect_uris": [CALLBACK, CALLBACK]}, "twice"),
        ({"token_endpoint_auth_method": "none"}, "not supported"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "needs the service's public keys"),
        ({"jwks": {"keys": []}}, "only for private_key_jwt"),
        ({"id_token_signed_response_alg": "HS256"}, "id_token_signed_response_alg"),
        ({"id_token_signed_response_alg": "none"}, "id_token_signed_response_alg"),
        ({"access_token_lifetime": 3600}, "access_token_lifetime"),
        ({"roles": [{"code": "Bad Code", "name": "x"}]}, "role code"),
        (
            {"roles": [{"code": "a", "name": "A", "organisation_types": ["school"]}]},
            "organisation_types",
        ),
        ({"backchannel_logout_uri": "http://rp.example/logout"}, "backchannel_logout_uri"),
    ],
)
def test_registration_rules(app: Flask, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(clients.ServiceValidationError, match=message):
        register(**overrides)
    assert db.session.scalar(select(func.count()).select_from(Service)) == 0


def test_every_problem_is_reported_at_once(app: Flask) -> None:
    with pytest.raises(clients.ServiceValidationError) as caught:
        register("x", redirect_uris=["http://evil.example/cb"], allowed_scopes=["admin"])
    assert len(caught.value.problems) >= 3


def test_client_credentials_only_services_need_no_redirect_uri(app: Flask) -> None:
    service, secret = register(
        redirect_uris=[], allowed_scopes=[], grant_types=["client_credentials"]
    )
    assert secret is not None
    assert service.grant_types == ["client_credentials"]


def test_a_client_id_is_registered_once(app: Flask) -> None:
    register()
    with pytest.raises(clients.ServiceExists):
        register()


# -- declarative files ----------------------------------------------------------------------

ENV = "IDP_SERVICE_COLLECT_SECRET"
SECRET_1 = "collect-secret-one-" + "a" * 30
SECRET_2 = "collect-secret-two-" + "b" * 30


def service_file(folder: Path, *, redirect: str = CALLBACK, extra: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "collect.toml"
    path.write_text(
        f"""
client_id = "collect"
name = "Collect"
description = "Data collections from schools"
start_url = "https://collect.education.gov.uk/"
redirect_uris = ["{redirect}"]
post_logout_redirect_uris = ["https://collect.education.gov.uk/signed-out"]
backchannel_logout_uri = "https://collect.education.gov.uk/auth/backchannel-logout"
allowed_scopes = ["openid", "profile", "email", "organisation", "roles"]
grant_types = ["authorization_code", "refresh_token"]
client_secret_env = "{ENV}"
require_mfa = true
{extra}

[[roles]]
code = "submitter"
name = "Submitter"
description = "Submits returns"
organisation_types = ["establishment"]

[[roles]]
code = "approver"
name = "Approver"
""",
        encoding="utf-8",
    )
    return path


def audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_loading_a_file_registers_the_service_with_the_secret_from_the_environment(
    app: Flask, tmp_path: Path
) -> None:
    service_file(tmp_path)
    report = clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    db.session.commit()

    assert report.created == ["collect"]
    service = clients.find_service("collect")
    assert service is not None
    assert service.require_mfa
    roles = {r.code: r for r in service.roles}
    assert sorted(roles) == ["approver", "submitter"]
    assert roles["submitter"].organisation_types == ["establishment"]
    assert roles["approver"].organisation_types is None
    assert clients.authenticate_client_secret("collect", SECRET_1) is service
    assert SECRET_1 not in everything_stored()


def test_loading_the_same_file_again_changes_nothing(app: Flask, tmp_path: Path) -> None:
    service_file(tmp_path)
    clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    db.session.commit()
    before = audit_count()

    report = clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    db.session.commit()

    assert report.unchanged == ["collect"]
    assert not report.changed
    assert audit_count() == before
    assert db.session.scalar(select(func.count()).select_from(ServiceSecret)) == 1


def test_a_changed_file_updates_the_service(app: Flask, tmp_path: Path) -> None:
    service_file(tmp_path)
    clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    db.session.commit()
    new_callback = "https://collect.education.gov.uk/oidc/callback"
    path = service_file(tmp_path, redirect=new_callback)
    path.write_text(path.read_text().split('[[roles]]\ncode = "approver"')[0], encoding="utf-8")

    report = clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    db.session.commit()

    assert set(report.updated["collect"]) == {"redirect_uris", "roles"}
    service = clients.find_service("collect")
    assert service is not None
    assert service.redirect_uris == [new_callback]
    assert [r.code for r in service.roles] == ["submitter"]
    (updated,) = events("service.updated")
    assert updated.details["role_changes"] == ["-approver"]


def test_a_new_secret_in_the_environment_is_added_and_the_old_one_still_works(
    app: Flask, tmp_path: Path
) -> None:
    service_file(tmp_path)
    clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    db.session.commit()

    report = clients.load_service_files(tmp_path, environ={ENV: SECRET_2})
    db.session.commit()

    assert report.secrets_added == ["collect"]
    assert clients.authenticate_client_secret("collect", SECRET_1) is not None
    assert clients.authenticate_client_secret("collect", SECRET_2) is not None


def test_the_environment_is_read_by_default(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_file(tmp_path)
    monkeypatch.setenv(ENV, SECRET_1)

    clients.load_service_files(tmp_path)
    db.session.commit()
    assert clients.authenticate_client_secret("collect", SECRET_1) is not None


def test_a_missing_environment_variable_is_a_clear_error_and_nothing_is_written(
    app: Flask, tmp_path: Path
) -> None:
    service_file(tmp_path)
    with pytest.raises(clients.ServiceFileError) as caught:
        clients.load_service_files(tmp_path, environ={})

    assert caught.value.problems == [
        f"collect.toml: the environment variable {ENV} (client_secret_env) is not set; "
        "set it to the service's client secret"
    ]
    assert db.session.scalar(select(func.count()).select_from(Service)) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('client_secret = "inline-secrets-are-never-read-from-files-xxxxxxxx"', "client_secret"),
        ('redirect_uri = "https://typo.example/cb"', "redirect_uri"),
        ("require_mfa = 1", "require_mfa"),
        ('token_endpoint_auth_method = "client_secret_jwt"', "not supported"),
    ],
)
def test_invalid_files_are_refused_with_the_file_name(
    app: Flask, tmp_path: Path, extra: str, message: str
) -> None:
    if "require_mfa" in extra:
        path = service_file(tmp_path)
        path.write_text(path.read_text().replace("require_mfa = true", extra), encoding="utf-8")
    else:
        service_file(tmp_path, extra=extra)

    with pytest.raises(clients.ServiceFileError, match=message) as caught:
        clients.load_service_files(tmp_path, environ={ENV: SECRET_1})
    assert all(p.startswith("collect.toml: ") for p in caught.value.problems)


def test_a_weak_secret_in_the_environment_is_refused(app: Flask, tmp_path: Path) -> None:
    service_file(tmp_path)
    with pytest.raises(clients.ServiceFileError, match="at least 32"):
        clients.load_service_files(tmp_path, environ={ENV: "password1"})


# -- the command line -----------------------------------------------------------------------


def test_create_service_prints_the_secret_once_and_stores_only_its_hash(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            "create-service",
            "--client-id",
            "collect",
            "--name",
            "Collect",
            "--redirect-uri",
            CALLBACK,
            "--post-logout-redirect-uri",
            "https://collect.education.gov.uk/signed-out",
            "--require-mfa",
        ]
    )
    assert result.exit_code == 0, result.output

    (secret_line,) = [line for line in result.stdout.splitlines() if "client_secret" in line]
    secret = secret_line.split()[-1]
    assert result.output.count(secret) == 1
    assert "will not be shown again" in result.output
    db.session.expire_all()
    service = clients.find_service("collect")
    assert service is not None
    assert service.allowed_scopes == ["openid", "profile", "email"]
    assert service.grant_types == ["authorization_code", "refresh_token"]
    assert [s.secret_hash for s in service.secrets] == [crypto.keyed_hash(secret)]
    assert secret not in everything_stored()


def test_create_service_reports_every_problem(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-service", "--client-id", "x", "--name", "X", "--redirect-uri", "http://a/#"]
    )
    assert result.exit_code == 1
    assert "client_id" in result.output
    assert "redirect_uri" in result.output


def test_rotate_service_secret_adds_a_secret_and_can_expire_the_old(app: Flask) -> None:
    _, old = register()
    result = app.test_cli_runner().invoke(
        args=["rotate-service-secret", "collect", "--expire-old-in-hours", "0"]
    )
    assert result.exit_code == 0, result.output
    new = next(line for line in result.stdout.splitlines() if "client_secret" in line).split()[-1]

    db.session.expire_all()
    assert old is not None
    assert clients.authenticate_client_secret("collect", new) is not None
    assert clients.authenticate_client_secret("collect", old) is None


def test_load_services_command(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service_file(tmp_path)
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["load-services", str(tmp_path)])
    assert missing.exit_code == 1
    assert ENV in missing.output

    monkeypatch.setenv(ENV, SECRET_1)
    first = runner.invoke(args=["load-services", str(tmp_path)])
    again = runner.invoke(args=["load-services", str(tmp_path)])

    assert first.exit_code == 0
    assert "created   collect" in first.output
    assert again.exit_code == 0
    assert "unchanged collect" in again.output
    assert SECRET_1 not in first.output + again.output


def test_key_commands(app: Flask) -> None:
    runner = app.test_cli_runner()
    assert "Created 6" in runner.invoke(args=["ensure-keys"]).output

    too_soon = runner.invoke(args=["rotate-keys", "--alg", "ES256"])
    assert too_soon.exit_code == 75
    assert "--force" in too_soon.output

    forced = runner.invoke(args=["rotate-keys", "--alg", "ES256", "--force"])
    assert forced.exit_code == 0
    assert "now signs" in forced.output
    assert "retired" in forced.output
    assert runner.invoke(args=["prune-keys"]).output.strip() == "Nothing to remove."
