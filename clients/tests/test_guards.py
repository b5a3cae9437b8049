"""``login_required``: roles, a second factor by step-up, and recent sign-in (J03 acr, J08).

The MFA step-up asks Secure Access for ``acr_values=urn:secure-access:acr:mfa`` and refuses an
ID Token whose ``acr`` is not that value (OIDC Core §3.1.2.1, §3.1.3.7 step 12).
"""

from __future__ import annotations

from fake_op import ACR_MFA
from rp_helpers import Journey, local, make_rp_app, query, refusal, signed_in


def test_a_person_without_the_role_gets_a_plain_403(browser, op):
    Journey(browser, op).sign_in(roles=("submitter",))

    response = browser.get("/approve")
    assert response.status_code == 403
    assert "You do not have access to this page" in response.get_data(as_text=True)


def test_any_one_of_the_roles_is_enough(browser, op):
    Journey(browser, op).sign_in(roles=("viewer", "approver"))

    assert browser.get("/approve").status_code == 200


def test_an_mfa_page_steps_up_asking_for_the_mfa_acr(browser, op):
    Journey(browser, op).sign_in()
    response = browser.get("/pensions")
    assert response.status_code == 302
    assert query(response.location) == {"next": "/pensions", "mfa": "1"}

    step_up = Journey(browser, op)
    step_up.start("/pensions")
    assert step_up.params["acr_values"] == ACR_MFA
    back = step_up.callback(acr=ACR_MFA, amr=("pwd", "otp"))
    assert local(back.location) == "/pensions"
    assert browser.get("/pensions").get_data(as_text=True) == f"pensions {ACR_MFA}"


def test_a_step_up_answered_without_mfa_is_refused(browser, op):
    Journey(browser, op).sign_in()

    response = Journey(browser, op).start("/pensions").callback()  # acr stays pwd
    assert response.status_code == 400
    assert refusal(response) == "acr-not-mfa"
    assert browser.get("/pensions").status_code == 302
    assert signed_in(browser)  # the earlier password-only sign-in is untouched


def test_require_mfa_applies_to_every_sign_in(op, tmp_path, clock):
    app = make_rp_app(op, tmp_path, clock, REQUIRE_MFA="true")
    browser = app.test_client()

    journey = Journey(browser, op).start("/private")
    assert journey.params["acr_values"] == ACR_MFA
    assert refusal(journey.callback()) == "acr-not-mfa"
    Journey(browser, op).sign_in(acr=ACR_MFA, amr=("pwd", "otp"))
    assert signed_in(browser)


def test_a_sensitive_page_wants_a_recent_sign_in(browser, op, clock):
    Journey(browser, op).sign_in()
    assert browser.get("/sensitive").status_code == 200
    clock.advance(301)  # the access token is refreshed; auth_time stays where it was

    response = browser.get("/sensitive")
    assert response.status_code == 302
    assert query(response.location) == {"next": "/sensitive", "max_age": "300"}


def test_max_age_is_sent_and_an_old_auth_time_is_refused(browser, op, clock):
    Journey(browser, op).sign_in()
    clock.advance(400)

    journey = Journey(browser, op).start("/sensitive")
    assert journey.params["max_age"] == "300"
    stale = journey.callback(auth_time=clock() - 400)
    assert refusal(stale) == "max-age"

    fresh = Journey(browser, op).start("/sensitive").callback(auth_time=clock())
    assert local(fresh.location) == "/sensitive"
    assert browser.get("/sensitive").status_code == 200
