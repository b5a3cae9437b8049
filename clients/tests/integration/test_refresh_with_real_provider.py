"""Silent refresh against the real provider, and a local session that never outlives the
provider's session even when the back-channel message never arrives (J08, J03 Also; BCL
§2.7: the provider revokes a session's refresh tokens when the session ends).

Time is not waited for: the test marks the service's stored access token as expired, which is
what the clock would do, and the next request refreshes it.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from provider_helpers import give_access, organisation, require_provider
from tests.factories import DEFAULT_PASSWORD, make_user

from secure_access_client.sessions import digest

pytestmark = pytest.mark.e2e

EMAIL = "sam.patel@hilltop-primary.example"


def expire_access_tokens(app: Any, sub: str) -> list[dict[str, Any]]:
    """Mark every stored session of ``sub`` at this service as due for a refresh."""
    rp = app.extensions["secure_access"][1]
    sessions = []
    for key in rp.store.index_members(digest("sub", rp.settings.issuer, sub)):
        data = rp.store.load(key)
        if data is not None:
            data["auth"]["expires_at"] = 0
            rp.store.save(key, data, 600)
            sessions.append(data)
    return sessions


def stored_access_tokens(app: Any, sub: str) -> list[str]:
    rp = app.extensions["secure_access"][1]
    tokens = []
    for key in rp.store.index_members(digest("sub", rp.settings.issuer, sub)):
        data = rp.store.load(key)
        if data is not None:
            tokens.append(data["auth"]["access_token"])
    return tokens


def test_refresh_with_the_real_provider_and_an_ended_provider_session(
    provider, demo_services, browser_page
):
    require_provider(provider.app, "oidc.authorize", "oidc.token", "oidc.userinfo")
    gias = demo_services.start("get-information-about-schools")
    person = make_user(email=EMAIL, given_name="Sam", family_name="Patel")
    give_access(person, organisation(), "get-information-about-schools", ["gias_editor"])

    def sign_in(page: Any) -> None:
        page.goto(gias.url + "/service")
        page.wait_for_url(provider.url + "/sign-in**")
        page.fill("#email", EMAIL)
        page.fill("#password", DEFAULT_PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(gias.url + "/service")
        # Let the browser's own follow-up requests (the favicon) finish: each one saves the
        # service's session, and a late one would undo the edit this test makes below.
        page.wait_for_load_state("networkidle")

    browser_page(sign_in)
    [before] = stored_access_tokens(gias.app, person.sub)
    cookie_name = gias.app.extensions["secure_access"][1].settings.session_cookie_name
    [cookie] = [
        c["value"]
        for c in browser_page(lambda page: page.context.cookies())
        if c["name"] == cookie_name
    ]

    def visit_service() -> requests.Response:
        # One request at a time (a browser would also fetch the favicon, racing for the
        # refresh): the service's own cookie, sent by hand.
        return requests.get(
            gias.url + "/service",
            headers={"Cookie": f"{cookie_name}={cookie}"},
            allow_redirects=False,
            timeout=30,
        )

    # The access token is due: the next page view refreshes it silently.
    assert expire_access_tokens(gias.app, person.sub)
    assert visit_service().status_code == 200
    [after] = stored_access_tokens(gias.app, person.sub)
    assert after != before

    # Sign out at Secure Access itself. The back-channel message is queued but, here, never
    # delivered (no worker runs): the refresh tokens of the session are revoked, though.
    def sign_out_at_provider(page: Any) -> None:
        page.goto(provider.url + "/sign-out")
        page.click("main button:has-text('Sign out')")
        page.wait_for_load_state()

    browser_page(sign_out_at_provider)
    assert expire_access_tokens(gias.app, person.sub)

    response = visit_service()  # the refused refresh ends the local session
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/sign-in")
    assert stored_access_tokens(gias.app, person.sub) == []
