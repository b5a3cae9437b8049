"""The OIDC code flow in headless Chromium against the live server (idp.oidc.endpoints): a
relying service's link (GET) and its form (POST) both end at its redirect URI with a code,
state and iss; an unregistered redirect URI gets our error page (F01, F10; OIDC Core §3.1.2)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from html import escape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from idp.models import User
from tests.e2e.conftest import assert_accessible
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP

pytestmark = pytest.mark.e2e


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[str]]]:
    """A relying service's callback on loopback that records the URLs it is sent to."""
    seen: list[str] = []

    def app(environ: dict, start_response) -> list[bytes]:
        seen.append(Request(environ).url)
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<!doctype html><title>Back at the service</title><p>ok</p>"]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/callback", seen
    server.shutdown()
    thread.join(5)


@pytest.fixture
def user() -> User:
    return make_user(email=EMAIL)


@pytest.fixture
def rp(client, callback_server) -> RP:
    return RP.register(client, redirect_uris=(callback_server[0],))


def sign_in(page) -> None:
    page.fill("#email", EMAIL)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")


def last_callback(seen: list[str]) -> str:
    return [url for url in seen if "/callback?" in url][-1]  # not the favicon


def callback_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_code_flow_by_get_in_a_browser(page, live_server, callback_server, rp, user):
    seen = callback_server[1]
    request = rp.new_request(login_hint=EMAIL)
    page.goto(live_server.url + "/authorize?" + urlencode(request.params))
    assert page.locator("#email").input_value() == EMAIL  # login_hint
    sign_in(page)
    page.wait_for_url(rp.redirect_uri + "?*")
    params = callback_params(last_callback(seen))
    assert params["state"] == request.state
    assert params["iss"] == "http://localhost"
    body = rp.tokens(rp.callback_from(last_callback(seen)))
    rp.validate_id_token(body["id_token"], nonce=request.nonce)
    # A second authorization in the same browser is silent (SSO).
    second = rp.new_request(prompt="none")
    page.goto(live_server.url + "/authorize?" + urlencode(second.params))
    page.wait_for_url(rp.redirect_uri + "?*")
    assert "code" in callback_params(last_callback(seen))


def test_code_flow_by_post_in_a_browser(page, live_server, callback_server, rp, user):
    seen = callback_server[1]
    request = rp.new_request()
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in request.params.items()
    )
    page.set_content(
        f'<form method="post" action="{live_server.url}/authorize">{fields}'
        '<button type="submit">Continue</button></form>'
    )
    page.click("button")
    page.wait_for_selector("#email")
    sign_in(page)
    page.wait_for_url(rp.redirect_uri + "?*")
    params = callback_params(last_callback(seen))
    assert params["state"] == request.state
    assert rp.redeem(params["code"]).status_code == 200


def test_the_error_page_is_accessible_and_never_redirects(page, live_server, rp, user):
    request = rp.new_request(redirect_uri="https://attacker.example/cb")
    response = page.goto(live_server.url + "/authorize?" + urlencode(request.params))
    assert response.status == 400
    assert page.url.startswith(live_server.url)
    assert "There is a problem with the link to sign in" in page.locator("h1").inner_text()
    assert_accessible(page)


def test_consent_page_allow_then_withdraw_in_a_browser(
    page, live_server, client, callback_server, user
):
    """F11: a service that is not first-party asks first; a real click on "Allow" ends at its
    callback with a code; "Services you have allowed" lists it and withdraws it. Both pages
    pass axe, and both are plain forms that need no JavaScript."""
    seen = callback_server[1]
    rp = RP.register(
        client, client_id="reading-app", redirect_uris=(callback_server[0],), first_party=False
    )
    request = rp.new_request()
    page.goto(live_server.url + "/authorize?" + urlencode(request.params))
    sign_in(page)
    page.wait_for_url("**/authorize/consent/*")
    heading = page.locator("h1").inner_text()
    assert heading == "Allow Service reading-app to use your Secure Access account?"
    assert "see your email address" in page.locator("main").inner_text()
    assert_accessible(page)
    page.get_by_role("button", name="Allow", exact=True).click()
    page.wait_for_url(rp.redirect_uri + "?*")
    params = callback_params(last_callback(seen))
    assert params["state"] == request.state
    assert params["iss"] == "http://localhost"
    body = rp.tokens(rp.callback_from(last_callback(seen)))
    rp.validate_id_token(body["id_token"], nonce=request.nonce)

    page.goto(live_server.url + "/account")
    page.click("text=See what other services can get from your account")
    page.wait_for_url("**/account/allowed-services")
    assert "Service reading-app" in page.locator("main").inner_text()
    assert_accessible(page)
    page.get_by_role("button", name="Withdraw Service reading-app's access").click()
    page.wait_for_url("**/account/allowed-services")
    banner = page.locator(".govuk-notification-banner").inner_text()
    assert "You have withdrawn Service reading-app's access" in banner
    assert_accessible(page)
    # The next visit from the service asks again.
    page.goto(live_server.url + "/authorize?" + urlencode(rp.new_request().params))
    page.wait_for_url("**/authorize/consent/*")
