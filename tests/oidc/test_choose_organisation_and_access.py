"""Issue 7 in the authorization request: choose organisation, then the access check.

Choose organisation (DESIGN §4): asked only when the scopes include ``organisation`` or ``roles``
and the person has several organisations; the choice goes into the ID token, userinfo and
refresh tokens; ``prompt=none`` reuses a remembered choice or fails with ``interaction_required``
(OIDC Core §3.1.2.6); ``prompt=select_account`` asks again. Access check: no grant for a
``granted`` service gives the no-access page (403), or ``access_denied`` (RFC 6749 §4.1.2.1)
with ``prompt=none``; access taken away ends the refresh chain.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import AccessRequest, AuditEvent, Organisation
from idp.services import access
from idp.services.clients import get_service
from idp.services.transaction import transaction
from tests.access_helpers import grant, member, school
from tests.factories import SignIn, csrf_token, make_user, page_text
from tests.mailbox import emails_to
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, error_redirect

SCOPES = ("openid", "profile", "email", "organisation", "roles", "offline_access")
ROLES = [{"code": "viewer", "name": "Viewer"}, {"code": "editor", "name": "Editor"}]


@pytest.fixture
def rp(client) -> RP:
    return RP.register(
        client, client_id="pupil-data", scopes=SCOPES, access_policy="granted", roles=ROLES
    )


@pytest.fixture
def hilltop() -> Organisation:
    return school("Hill Top Primary", "100001")


@pytest.fixture
def riverside() -> Organisation:
    return school("Riverside Academy", "100002")


@pytest.fixture
def two_schools(user, hilltop, riverside, rp) -> tuple[Organisation, Organisation]:
    grant(user, hilltop, "pupil-data", ["viewer"])
    grant(user, riverside, "pupil-data", ["editor"])
    return hilltop, riverside


def sign_in_to_choose(rp: RP, **params: str) -> TestResponse:
    """Authorize, sign in, and stop at the choose-organisation page."""
    response = rp.follow(rp.authorize(scope="openid organisation roles", **params))
    if "Sign in" in page_text(response):
        response = rp.follow(SignIn(rp.client).with_password(EMAIL))
    return response


def claims_of(rp: RP, body: dict) -> dict:
    return rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)


# -- choose organisation ---------------------------------------------------------------------


def test_one_organisation_is_not_asked_and_is_the_organisation(rp, user, hilltop):
    grant(user, hilltop, "pupil-data", ["viewer"])
    body = rp.tokens(rp.login(EMAIL, scope="openid organisation roles"))  # no page in between
    claims = claims_of(rp, body)
    assert claims["organisation"]["name"] == "Hill Top Primary"
    assert claims["roles"] == ["viewer"]


def test_several_organisations_are_asked_and_the_choice_reaches_every_token(rp, two_schools):
    _, riverside = two_schools
    page = sign_in_to_choose(rp)
    assert page.status_code == 200
    text = page_text(page)
    assert "Which organisation are you signing in for?" in text
    assert "Hill Top Primary" in text
    assert "Riverside Academy" in text
    callback = rp.callback(rp.follow(rp.choose_organisation(page, riverside.public_id)))
    body = rp.tokens(callback)
    claims = claims_of(rp, body)
    assert claims["organisation"]["id"] == riverside.public_id
    assert claims["roles"] == ["editor"]  # this service's roles at the chosen school
    assert {o["name"] for o in claims["organisations"]} == {"Hill Top Primary", "Riverside Academy"}
    info = rp.userinfo(body["access_token"]).get_json()
    assert info["organisation"]["name"] == "Riverside Academy"
    assert info["roles"] == ["editor"]
    refreshed = rp.refresh(body["refresh_token"]).get_json()
    assert rp.userinfo(refreshed["access_token"]).get_json()["organisation"]["name"] == (
        "Riverside Academy"
    )


def test_without_the_organisation_scope_nobody_is_asked(rp, user, two_schools):
    callback = rp.login(EMAIL, scope="openid profile")
    assert "organisation" not in claims_of(rp, rp.tokens(callback))


def test_choosing_nothing_or_a_forged_organisation_is_an_error_on_the_page(rp, two_schools):
    page = sign_in_to_choose(rp)
    path = page.request.path
    empty = rp.client.post(path, data={"csrf_token": csrf_token(page)})
    assert empty.status_code == 400
    assert "Select the organisation you are signing in for" in page_text(empty)
    stranger = school("Somewhere Else", "999999")
    forged = rp.client.post(
        path, data={"organisation": stranger.public_id, "csrf_token": csrf_token(page)}
    )
    assert forged.status_code == 400
    assert rp.client.get("/authorize/organisation/not-a-real-id").status_code == 400


def test_prompt_none_without_a_remembered_choice_is_interaction_required(rp, two_schools):
    rp.login(EMAIL, scope="openid profile")  # signed in, never chose for this service
    params = error_redirect(rp.authorize(scope="openid organisation", prompt="none"))
    assert params["error"] == "interaction_required"
    assert params["state"] == rp.last.state


def test_prompt_none_reuses_the_remembered_choice(rp, two_schools):
    _, riverside = two_schools
    rp.login(EMAIL, scope="openid organisation roles", organisation=riverside.public_id)
    silent = rp.callback(rp.authorize(scope="openid organisation roles", prompt="none"))
    assert claims_of(rp, rp.tokens(silent))["organisation"]["id"] == riverside.public_id


def test_prompt_select_account_asks_again(rp, two_schools):
    hilltop, riverside = two_schools
    rp.login(EMAIL, scope="openid organisation roles", organisation=riverside.public_id)
    again = rp.login(
        EMAIL,
        scope="openid organisation roles",
        prompt="select_account",
        organisation=hilltop.public_id,
    )
    assert claims_of(rp, rp.tokens(again))["organisation"]["id"] == hilltop.public_id
    # And that is now the remembered choice.
    silent = rp.callback(rp.authorize(scope="openid organisation roles", prompt="none"))
    assert claims_of(rp, rp.tokens(silent))["organisation"]["id"] == hilltop.public_id


# -- the access check ------------------------------------------------------------------------


def test_no_access_page_names_the_service_the_school_and_its_approvers(rp, user, hilltop):
    member(user, hilltop)
    approver = make_user(email="sam@hilltop.example", given_name="Sam", family_name="Patel")
    member(approver, hilltop, approver=True)
    rp.follow(rp.authorize(scope="openid organisation"))
    page = rp.follow(SignIn(rp.client).with_password(EMAIL))
    assert page.status_code == 403
    text = page_text(page)
    assert "You do not have access to Service pupil-data" in text
    assert "Hill Top Primary" in text
    assert "Sam Patel" in text
    assert "Request access" in text
    assert "Location" not in page.headers  # nothing went back to the service


def test_no_access_at_an_organisation_without_approvers_mentions_the_helpdesk(rp, user, hilltop):
    member(user, hilltop)
    rp.follow(rp.authorize())
    page = rp.follow(SignIn(rp.client).with_password(EMAIL))
    assert page.status_code == 403
    assert "has no approver yet" in page_text(page)
    assert "helpdesk will handle your request" in page_text(page)


def test_access_at_one_school_is_not_access_at_the_chosen_other(rp, user, hilltop, riverside):
    grant(user, hilltop, "pupil-data", ["viewer"])
    member(user, riverside)
    page = sign_in_to_choose(rp)
    refused = rp.follow(rp.choose_organisation(page, riverside.public_id))
    assert refused.status_code == 403
    assert "signed in for Riverside Academy" in page_text(refused)


def test_prompt_none_without_access_is_access_denied(rp, user, hilltop):
    member(user, hilltop)
    SignIn(rp.client).completed(EMAIL)
    params = error_redirect(rp.authorize(prompt="none"))
    assert params["error"] == "access_denied"
    assert params["state"] == rp.last.state
    refused = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "oidc.access_refused"))
    assert refused.target_id == "pupil-data"
    assert refused.outcome == "denied"


def test_request_access_from_the_no_access_page_once(rp, user, hilltop):
    member(user, hilltop)
    approver = make_user(email="sam@hilltop.example", given_name="Sam", family_name="Patel")
    member(approver, hilltop, approver=True)
    SignIn(rp.client).completed(EMAIL)
    page = rp.follow(rp.authorize())
    assert page.status_code == 403
    form = {
        "organisation": hilltop.public_id,
        "reason": "I enter the census returns",
        "csrf_token": csrf_token(page),
    }
    sent = rp.client.post("/services/pupil-data/request-access", data=form)
    assert sent.status_code == 200
    assert "Access requested" in page_text(sent)
    mail = emails_to("sam@hilltop.example")
    assert len(mail) == 1
    assert "I enter the census returns" in mail[0].body
    assert "Ada Lovelace" in mail[0].subject
    again = rp.client.post("/services/pupil-data/request-access", data=form)
    assert "You have already requested access" in page_text(again)
    assert db.session.scalar(select(func.count()).select_from(AccessRequest)) == 1
    assert len(emails_to("sam@hilltop.example")) == 1
    # The no-access page now says so too.
    assert "You have already requested access" in page_text(rp.follow(rp.authorize()))


def test_access_taken_away_ends_the_refresh_chain(rp, user, hilltop):
    grant(user, hilltop, "pupil-data", ["viewer"])
    body = rp.tokens(rp.login(EMAIL, scope="openid roles offline_access"))
    with transaction():
        access.set_access(user, hilltop, get_service("pupil-data"), ["editor"], actor="test")
    changed = rp.refresh(body["refresh_token"]).get_json()
    assert rp.userinfo(changed["access_token"]).get_json()["roles"] == ["editor"]
    with transaction():
        access.remove_access(user, hilltop, get_service("pupil-data"), actor="test")
    refused = rp.refresh(changed["refresh_token"])
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_grant"


def test_open_services_need_no_grant(client, user):
    open_rp = RP.register(client, client_id="public-info", access_policy="open")
    assert open_rp.login(EMAIL).code


def test_a_link_on_your_services_says_which_organisation(client, rp, two_schools):
    """Your services links a service under one school: that school is the choice, unasked."""
    _, riverside = two_schools
    with transaction():
        get_service("pupil-data").start_url = "https://pupil-data.example/start"
    SignIn(client).completed(EMAIL)
    opened = client.get(f"/services/pupil-data/open/{riverside.public_id}")
    assert opened.status_code == 303
    assert opened.headers["Location"] == "https://pupil-data.example/start"
    callback = rp.callback(rp.authorize(scope="openid organisation"))  # no page in between
    assert claims_of(rp, rp.tokens(callback))["organisation"]["id"] == riverside.public_id
    stranger = school("Somewhere Else", "999999")
    assert client.get(f"/services/pupil-data/open/{stranger.public_id}").status_code == 404
