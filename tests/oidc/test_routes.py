"""The OIDC URLs are a contract with every relying service (CONVENTIONS 12): they must not
vanish or change method. Discovery names the same URLs."""

from __future__ import annotations

OIDC_ROUTES = {
    "/authorize": {"GET", "POST"},
    "/authorize/resume/<handoff_id>": {"GET"},
    "/token": {"POST"},
    "/userinfo": {"GET", "POST"},
    "/revoke": {"POST"},
    "/introspect": {"POST"},
}


def test_oidc_route_snapshot(app):
    routes = {
        rule.rule: set(rule.methods or ()) - {"HEAD", "OPTIONS"}
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("oidc.")
    }
    assert routes == OIDC_ROUTES


def test_discovery_lists_the_endpoints_we_serve(app, client):
    config = client.get("/.well-known/openid-configuration").get_json()
    served = {rule.rule for rule in app.url_map.iter_rules()}
    for member in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        assert config[member].removeprefix(config["issuer"]) in served, member
