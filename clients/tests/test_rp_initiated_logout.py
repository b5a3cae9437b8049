"""RP-initiated logout (J07; RP-Initiated Logout 1.0 §2-§3).

Named after the RP conformance modules ``oidcc-client-test-rp-init-logout``, ``-no-state``
and ``-other-state``. Signing out takes a POST with the session's CSRF token, so a link or an
image elsewhere cannot sign anyone out.
"""

from __future__ import annotations

import re

from fake_op import CLIENT_ID
from rp_helpers import Journey, local, query, refusal, signed_in


def csrf_token(browser) -> str:
    page = browser.get("/auth/sign-out").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_out(browser):
    return browser.post("/auth/sign-out", data={"csrf_token": csrf_token(browser)})


def test_oidcc_client_test_rp_init_logout_sends_hint_client_id_uri_and_state(browser, op):
    Journey(browser, op).sign_in()

    response = sign_out(browser)
    assert response.status_code == 303
    assert response.location.startswith(op.issuer + "/logout?")
    params = query(response.location)
    assert params["client_id"] == CLIENT_ID
    assert params["post_logout_redirect_uri"] == "http://localhost/"
    assert len(params["state"]) >= 43
    assert params["id_token_hint"].count(".") == 2
    assert not signed_in(browser)  # the local session ended before leaving

    back = browser.get("/?" + "state=" + params["state"])
    assert back.status_code == 200
    assert back.get_data(as_text=True) == "signed out: anonymous"


def test_oidcc_client_test_rp_init_logout_no_state_is_refused(browser, op):
    Journey(browser, op).sign_in()
    sign_out(browser)

    response = browser.get("/")
    assert response.status_code == 400
    assert refusal(response) == "rp-init-logout-no-state"
    assert browser.get("/").get_data(as_text=True) == "home: anonymous"


def test_oidcc_client_test_rp_init_logout_other_state_is_refused(browser, op):
    Journey(browser, op).sign_in()
    sign_out(browser)

    response = browser.get("/?state=not-the-state-we-sent")
    assert response.status_code == 400
    assert refusal(response) == "rp-init-logout-other-state"
    assert not signed_in(browser)


def test_signing_out_needs_the_csrf_token(browser, op):
    Journey(browser, op).sign_in()

    for data in ({}, {"csrf_token": "guessed"}):
        response = browser.post("/auth/sign-out", data=data)
        assert response.status_code == 400
        assert refusal(response) == "csrf"
    assert signed_in(browser)


def test_the_sign_out_page_asks_for_confirmation(browser, op):
    Journey(browser, op).sign_in()

    page = browser.get("/auth/sign-out")
    assert page.status_code == 200
    assert '<form method="post" action="/auth/sign-out">' in page.get_data(as_text=True)
    assert signed_in(browser)


def test_signing_out_when_not_signed_in_just_goes_home(browser):
    assert local(browser.get("/auth/sign-out").location) == "/"
    assert local(browser.post("/auth/sign-out").location) == "/"


def test_without_a_post_logout_uri_there_is_no_state_and_no_return(op, tmp_path, clock):
    from rp_helpers import make_rp_app

    app = make_rp_app(op, tmp_path, clock, POST_LOGOUT_REDIRECT_URI="")
    browser = app.test_client()
    Journey(browser, op).sign_in()

    params = query(sign_out(browser).location)
    assert "state" not in params
    assert "post_logout_redirect_uri" not in params
    assert params["client_id"] == CLIENT_ID


def test_signing_out_while_the_provider_is_down_still_ends_the_local_session(op, tmp_path, clock):
    from rp_helpers import make_rp_app

    app = make_rp_app(op, tmp_path, clock, METADATA_CACHE_SECONDS="0")
    browser = app.test_client()
    Journey(browser, op).sign_in()
    token = csrf_token(browser)
    op.down = True

    response = browser.post("/auth/sign-out", data={"csrf_token": token})
    assert response.status_code == 200
    assert "You have signed out" in response.get_data(as_text=True)
    assert not signed_in(browser)
