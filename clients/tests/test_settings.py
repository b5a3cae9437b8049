"""The ``SECURE_ACCESS_*`` settings refuse unsafe or broken values at start-up (J02, J03)."""

from __future__ import annotations

import pytest

from secure_access_client import ConfigurationError, Settings

BASE = {
    "SECURE_ACCESS_ISSUER": "https://sign-in.education.example",
    "SECURE_ACCESS_CLIENT_ID": "collect",
    "SECURE_ACCESS_CLIENT_SECRET": "insecure-test-secret",
    "SECURE_ACCESS_BASE_URL": "https://collect.example",
}


def settings(**changes: str) -> Settings:
    values = dict(BASE)
    for name, value in changes.items():
        key = "SECURE_ACCESS_" + name
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return Settings.from_mapping(values)


def test_three_settings_are_enough_and_the_defaults_are_safe():
    s = settings()

    assert s.algorithms == ("RS256",)
    assert s.scopes == ("openid", "profile", "email", "organisation", "roles")
    assert s.redirect_uri == "https://collect.example/auth/callback"
    assert s.token_endpoint_auth_method == "client_secret_basic"
    assert s.require_at_hash
    assert s.cookie_secure
    assert s.session_cookie_name == "__Host-sa_collect"
    assert s.clock_skew == 60


@pytest.mark.parametrize(
    "changes",
    [
        {"ISSUER": None},
        {"CLIENT_ID": None},
        {"BASE_URL": None},
        {"CLIENT_SECRET": None},
        {"ISSUER": "https://sign-in.education.example/"},
        {"ISSUER": "https://sign-in.education.example?x=1"},
        {"ISSUER": "http://sign-in.education.example"},  # plain http off loopback
        {"ISSUER": "ftp://sign-in.education.example"},
        {"ALGORITHMS": "none"},
        {"ALGORITHMS": "RS256 HS256"},
        {"SCOPES": "profile email"},
        {"CLOCK_SKEW": "300"},
        {"REDIRECT_PATH": "https://evil.example/cb"},
        {"TOKEN_ENDPOINT_AUTH_METHOD": "none"},
        {"TOKEN_ENDPOINT_AUTH_METHOD": "private_key_jwt"},
        {"POST_LOGOUT_REDIRECT_URI": "http://collect.example/"},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_unsafe_or_broken_settings_are_refused(changes):
    with pytest.raises(ConfigurationError):
        settings(**changes)


def test_plain_http_is_accepted_on_loopback_for_development():
    s = settings(ISSUER="http://127.0.0.1:5000", BASE_URL="http://127.0.0.1:5101")

    assert s.redirect_uri == "http://127.0.0.1:5101/auth/callback"


def test_several_client_secrets_may_be_listed_during_rotation():
    s = settings(CLIENT_SECRET=None, CLIENT_SECRETS='["new-insecure", "old-insecure"]')

    assert s.client_secrets == ("new-insecure", "old-insecure")


def test_flask_app_without_settings_fails_at_start_up():
    from flask import Flask

    from secure_access_client import SecureAccess

    with pytest.raises(ConfigurationError, match="SECURE_ACCESS_ISSUER is not set"):
        SecureAccess(Flask("unconfigured"))
