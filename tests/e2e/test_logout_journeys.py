"""RP-Initiated Logout in headless Chromium: the confirmation page (I03) and the way back (I02).

Each of our pages is checked with axe-core. The relying service is a real server on loopback,
so the browser really follows the post-logout redirect.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from idp.auth.sso_cookie import COOKIE_NAME
from idp.services.sso_sessions import SsoSession, get_sso_sessions
from tests.e2e.conftest import assert_accessible
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.logout.conftest import (
    RelyingService,
    id_token_for,
    register,
    running_relying_service,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def relying_service() -> Iterator[RelyingService]:
    with running_relying_service() as service:
        yield service


def sign_in_and_use(page, client_id: str) -> SsoSession:
    """Sign in through the pages, then open ``client_id`` (as /authorize would record it)."""
    make_user(email="ada@school.example")
    page.goto("/sign-in?prompt=login")
    page.fill("#email", "ada@school.example")
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/services")  # issue 7: "Your services"
    [cookie] = [c for c in page.context.cookies() if c["name"] == COOKIE_NAME]
    return get_sso_sessions().add_service(cookie["value"], client_id)


def test_a_logout_request_without_a_hint_asks_first_and_never_redirects(
    page, relying_service
) -> None:
    back = f"{relying_service.url}/pupil-records/signed-out"
    register("pupil-records", post_logout=(back,))
    sign_in_and_use(page, "pupil-records")

    query = {"client_id": "pupil-records", "post_logout_redirect_uri": back, "state": "s1"}
    page.goto("/logout?" + urlencode(query))
    assert page.locator("h1").inner_text() == "Sign out of Secure Access?"
    assert "Pupil records" in page.inner_text("main")
    assert page.title().startswith("Sign out of Secure Access?")
    assert_accessible(page)

    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/logout/confirm")
    assert page.locator("h1").inner_text() == "You have signed out"
    assert_accessible(page)
    assert relying_service.received == []  # I03: the browser was never sent back

    page.goto("/account")
    page.wait_for_url("**/sign-in**")


def test_staying_signed_in_keeps_the_session(page, relying_service) -> None:
    register("pupil-records")
    sign_in_and_use(page, "pupil-records")
    page.goto("/logout")
    page.click("a:has-text('Stay signed in')")
    page.wait_for_url("**/account")
    assert page.locator("h1").inner_text() == "Your account"


def test_a_valid_hint_signs_out_and_returns_to_the_service_with_state(
    page, relying_service
) -> None:
    back = f"{relying_service.url}/pupil-records/signed-out"
    register("pupil-records", post_logout=(back,))
    session = sign_in_and_use(page, "pupil-records")

    query = {
        "id_token_hint": id_token_for("pupil-records", session),
        "post_logout_redirect_uri": back,
        "state": "xyz-42",
    }
    page.goto("/logout?" + urlencode(query))
    page.wait_for_url(f"{back}?state=xyz-42")
    assert page.locator("h1").inner_text() == "Signed out"
    [landing] = [r for r in relying_service.received if r.path.endswith("/signed-out")]
    assert landing.query == {"state": ["xyz-42"]}
    assert get_sso_sessions().list_for_user(session.sub) == []
