"""``oidcc-redirect-uri-query-OK``, ``-mismatch`` and ``-added`` (F01): a registered URI with a
query is used as registered, byte for byte; any other query is an error page."""

from __future__ import annotations

from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, assert_error_page

WITH_QUERY = "https://portal.school.example/callback?tenant=hill-top&x=%7E"


def test_oidcc_redirect_uri_query_ok(client, user):
    rp = RP.register(client, redirect_uris=(WITH_QUERY,))
    callback = rp.login(EMAIL)
    # RFC 6749 §3.1.2: the query is retained exactly, ours is appended.
    assert callback.uri.startswith(WITH_QUERY + "&code=")
    assert callback.params["tenant"] == "hill-top"
    assert rp.redeem(callback.code).status_code == 200


def test_oidcc_redirect_uri_query_mismatch(client, user):
    rp = RP.register(client, redirect_uris=(WITH_QUERY,))
    rp.login(EMAIL)
    assert_error_page(rp.authorize(redirect_uri=WITH_QUERY.replace("hill-top", "other")))


def test_oidcc_redirect_uri_query_added(rp, user):
    rp.login(EMAIL)
    assert_error_page(rp.authorize(redirect_uri=rp.redirect_uri + "?foo=bar"))
