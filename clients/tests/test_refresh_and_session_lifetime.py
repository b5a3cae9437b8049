"""The local session: silent refresh, and never outliving the provider's session (J03 Also,
J08; OIDC Core §12.2; RP conformance ``oidcc-client-test-refresh-token``,
``-refresh-token-invalid-issuer``, ``-refresh-token-invalid-sub``)."""

from __future__ import annotations

from rp_helpers import Journey, make_rp_app, signed_in

from secure_access_client.relying_party import HttpRequest
from secure_access_client.sessions import digest


def refreshes(op) -> int:
    return sum(
        1
        for path, form, _ in op.requests
        if path == "/token" and form.get("grant_type") == ["refresh_token"]
    )


def test_oidcc_client_test_refresh_token_renews_the_access_token_silently(browser, op, clock):
    Journey(browser, op).sign_in()
    first = browser.get("/token").get_data(as_text=True)
    clock.advance(290)  # within 30 s of the 300 s access token's expiry

    assert signed_in(browser)
    second = browser.get("/token").get_data(as_text=True)
    assert refreshes(op) == 1
    assert second != first
    assert second != "none"


def test_no_refresh_while_the_access_token_is_fresh(browser, op, clock):
    Journey(browser, op).sign_in()
    clock.advance(200)

    assert signed_in(browser)
    assert refreshes(op) == 0


def test_a_refused_refresh_ends_the_local_session(browser, op, clock):
    """The provider's session is over (sign-out elsewhere, expiry): so is ours."""
    Journey(browser, op).sign_in()
    op.refresh_tokens.clear()
    clock.advance(290)

    assert not signed_in(browser)


def test_oidcc_client_test_refresh_token_invalid_issuer_ends_the_session(browser, op, clock):
    Journey(browser, op).sign_in()
    op.tamper = lambda claims, header: claims.update(iss="https://evil.example")
    clock.advance(290)

    assert not signed_in(browser)


def test_oidcc_client_test_refresh_token_invalid_sub_ends_the_session(browser, op, clock):
    Journey(browser, op).sign_in()
    op.tamper = lambda claims, header: claims.update(sub="4f1c1c77-5f43-4a8e-9a9e-1f1f6a1d2b3c")
    clock.advance(290)

    assert not signed_in(browser)


def test_a_refreshed_id_token_with_a_wrong_at_hash_ends_the_session(browser, op, clock):
    Journey(browser, op).sign_in()
    op.tamper = lambda claims, header: claims.update(at_hash="AAAAAAAAAAAAAAAAAAAAAA")
    clock.advance(290)

    assert not signed_in(browser)


def test_an_unreachable_provider_during_refresh_keeps_the_session(op, tmp_path, clock):
    """Degraded mode: people already signed in carry on; refresh is retried later."""
    app = make_rp_app(op, tmp_path, clock, METADATA_CACHE_SECONDS="0")
    browser = app.test_client()
    Journey(browser, op).sign_in()
    op.down = True
    clock.advance(290)

    assert signed_in(browser)
    clock.advance(10)
    assert signed_in(browser)  # no second attempt within the retry interval
    op.down = False
    clock.advance(60)
    assert signed_in(browser)
    assert refreshes(op) == 1


def test_idle_and_absolute_limits_end_the_session(op, tmp_path, clock):
    app = make_rp_app(op, tmp_path, clock, SESSION_IDLE_TIMEOUT="600", SESSION_LIFETIME="1800")
    idle, busy = app.test_client(), app.test_client()
    Journey(idle, op).sign_in(sid="sid-idle")
    Journey(busy, op).sign_in(sid="sid-busy")

    for _ in range(3):
        clock.advance(300)
        assert signed_in(busy)
    assert not signed_in(idle)  # 900 s without a request
    clock.advance(900)  # 1800 s after auth_time, however busy
    assert not signed_in(busy)


def test_the_lifetime_counts_from_the_providers_auth_time_not_from_here(browser, op, clock):
    """Signing in to this service late in a long provider session gets only what is left."""
    Journey(browser, op).sign_in(auth_time=clock() - 43000)
    assert signed_in(browser)

    clock.advance(201)
    assert not signed_in(browser)


def session_key(rp_app, browser) -> str:
    name = rp_app.extensions["secure_access"][1].settings.session_cookie_name
    return digest(browser.get_cookie(name).value)


def test_only_one_request_refreshes_while_another_holds_the_lock(rp, browser, op, clock):
    """Refresh tokens are single use: two tabs refreshing at once would look like theft."""
    Journey(browser, op).sign_in()
    engine = rp.extensions["secure_access"][1]
    key = session_key(rp, browser)
    clock.advance(290)
    assert engine.store.remember_once(digest("refresh-lock", key), 30)  # another request's

    assert signed_in(browser)
    assert refreshes(op) == 0
    engine.store.forget(digest("refresh-lock", key))
    assert signed_in(browser)
    assert refreshes(op) == 1


def test_a_stale_copy_of_the_session_never_overwrites_refreshed_tokens(rp, browser, op, clock):
    Journey(browser, op).sign_in()
    engine = rp.extensions["secure_access"][1]
    name = engine.settings.session_cookie_name
    cookie = browser.get_cookie(name).value
    clock.advance(280)
    slow_tab = engine.open(HttpRequest("GET", "/private", cookies={name: cookie}))  # loads now
    clock.advance(10)
    assert signed_in(browser)  # this request refreshes
    engine.close(slow_tab)  # the slow request finishes afterwards, with its old copy

    clock.advance(290)
    assert signed_in(browser)  # the second refresh used the new refresh token, not the old one
    assert refreshes(op) == 2
