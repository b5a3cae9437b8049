"""Discovery and the JWKS endpoint: H05, H01, H04 and E08 (CORS), named after the conformance
suite's discovery modules where one exists."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.config import Settings
from idp.oidc import discovery, keys

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/.well-known/jwks.json"
ISSUER = "http://localhost"  # the test settings' public_base_url


def fetch(client: FlaskClient, path: str = DISCOVERY, **kwargs: Any) -> Any:
    response = client.get(path, **kwargs)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response


def test_oidcc_discovery_endpoint_verification(app: Flask, client: FlaskClient) -> None:
    """The members the conformance module checks, plus H05's list."""
    config = fetch(client).get_json()

    assert config["issuer"] == ISSUER  # exact: no trailing slash, nothing from the request
    for member in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "service_documentation",
    ):
        assert config[member].startswith(ISSUER + "/"), member
    assert config["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert config["token_endpoint"] == f"{ISSUER}/token"
    assert config["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert config["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert config["response_types_supported"] == ["code"]
    assert config["response_modes_supported"] == ["query"]
    assert config["subject_types_supported"] == ["public"]
    assert config["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
    ]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert config["scopes_supported"][0] == "openid"
    assert "openid" in config["scopes_supported"]
    assert config["authorization_response_iss_parameter_supported"] is True
    for flag in ("claims_parameter", "request_parameter", "request_uri_parameter"):
        assert config[f"{flag}_supported"] is False
    assert set(config["claims_supported"]) >= {"sub", "iss", "aud", "exp", "iat", "acr", "amr"}
    assert config["acr_values_supported"] == [discovery.ACR_SINGLE_FACTOR, discovery.ACR_MFA]
    assert config["prompt_values_supported"] == ["none", "login", "consent", "select_account"]
    assert config["ui_locales_supported"] == ["en-GB"]


def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(client: FlaskClient) -> None:
    config = fetch(client).get_json()

    assert config["end_session_endpoint"] == f"{ISSUER}/logout"


def test_oidcc_backchannel_logout_discovery_endpoint_verification(client: FlaskClient) -> None:
    config = fetch(client).get_json()

    assert config["backchannel_logout_supported"] is True
    assert config["backchannel_logout_session_supported"] is True
    assert config["frontchannel_logout_supported"] is False
    assert config["end_session_endpoint"] == f"{ISSUER}/logout"


def test_signing_algorithms_are_exactly_the_implemented_asymmetric_ones(
    app: Flask, client: FlaskClient
) -> None:
    """H01: RS256 always, no none, no HS*; each advertised algorithm has a published key."""
    config = fetch(client).get_json()
    jwks = fetch(client, JWKS).get_json()

    algs = config["id_token_signing_alg_values_supported"]
    assert algs == ["RS256", "ES256", "EdDSA"] == list(keys.SIGNING_ALGS)
    assert config["token_endpoint_auth_signing_alg_values_supported"] == algs
    assert not [a for a in algs if a == "none" or a.startswith("HS")]
    assert {k["alg"] for k in jwks["keys"]} == set(algs)
    assert "userinfo_signing_alg_values_supported" not in config  # UserInfo is plain JSON


def test_the_document_lists_nothing_unimplemented(client: FlaskClient) -> None:
    config = fetch(client).get_json()

    assert set(config) == {
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "scopes_supported",
        "response_types_supported",
        "response_modes_supported",
        "grant_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
        "code_challenge_methods_supported",
        "claims_supported",
        "acr_values_supported",
        "prompt_values_supported",
        "claims_parameter_supported",
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "authorization_response_iss_parameter_supported",
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
        "frontchannel_logout_supported",
        "ui_locales_supported",
        "service_documentation",
    }


def test_urls_come_from_the_issuer_setting_never_the_host_header(client: FlaskClient) -> None:
    config = fetch(client, headers={"Host": "127.0.0.1:5000"}).get_json()

    assert config["issuer"] == ISSUER
    assert {urlsplit(v).netloc for k, v in config.items() if k.endswith("_endpoint")} == {
        "localhost"
    }


def test_an_issuer_setting_overrides_the_public_base_url(settings: Settings) -> None:
    custom = settings.model_copy(update={"issuer": "https://sign-in.education.gov.uk/oidc"})
    config = discovery.discovery_document(custom)

    assert config["issuer"] == "https://sign-in.education.gov.uk/oidc"
    assert config["token_endpoint"] == "https://sign-in.education.gov.uk/oidc/token"
    assert config["jwks_uri"] == "https://sign-in.education.gov.uk/oidc/.well-known/jwks.json"


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.example/",
        "https://idp.example?x=1",
        "https://idp.example#f",
        "ftp://idp.example",
        "idp.example",
    ],
)
def test_an_issuer_oidc_does_not_allow_is_refused(settings: Settings, issuer: str) -> None:
    with pytest.raises(ValueError, match="IDP_ISSUER"):
        discovery.get_issuer(settings.model_copy(update={"issuer": issuer}))


def test_production_needs_an_https_issuer(settings: Settings) -> None:
    production = settings.model_copy(update={"env": "production", "issuer": "http://idp.example"})
    with pytest.raises(ValueError, match="https"):
        discovery.get_issuer(production)


def test_jwks_endpoint_publishes_unique_public_keys(app: Flask, client: FlaskClient) -> None:
    """H04 / ValidateServerJWKs, CheckDistinctKeyIdValueInServerJWKs."""
    keys.ensure_keys()
    keys.rotate("RS256", force=True)  # so a retired key is published too
    jwks = fetch(client, JWKS).get_json()

    kids = [k["kid"] for k in jwks["keys"]]
    assert len(kids) == len(set(kids)) == 7
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k", "oth"} & set(key)
        assert key["use"] == "sig"
        assert key["kty"] in {"RSA", "EC", "OKP"}


@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_public_documents_are_cacheable_and_readable_cross_origin(
    client: FlaskClient, path: str
) -> None:
    response = fetch(client, path, headers={"Origin": "https://tool.example"})

    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_cors_is_not_enabled_elsewhere(client: FlaskClient, path: str) -> None:
    """E08 Also: CORS on discovery and the JWKS only (never, e.g., on /authorize)."""
    response = client.get(path, headers={"Origin": "https://tool.example"})

    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers.get("Cache-Control") != "public, max-age=300"
