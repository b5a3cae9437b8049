"""The callback is bound to the browser that started the sign-in, and to the pinned issuer.

J01 (state, nonce and verifier in the user's server-side session, used once; RFC 6749
§10.12; Authlib GHSA-fg6f-75jq-6523), J02 (issuer pinned; RFC 9207 ``iss``), and the
provider's own error answers (RFC 6749 §4.1.2.1). §3 V5 of the checklist: mix-up and CSRF on
the RP callback.
"""

from __future__ import annotations

from rp_helpers import Journey, local, make_rp_app, refusal, signed_in


def test_a_reused_state_is_refused(browser, op):
    journey = Journey(browser, op).start()
    callback = journey.callback_url()
    assert browser.get(callback).status_code == 303
    browser.get("/auth/sign-out")  # whatever happens in between, the state stays spent

    again = browser.get(callback)
    assert again.status_code == 400
    assert refusal(again) == "state-mismatch"


def test_a_callback_delivered_to_another_browser_is_refused(rp, op):
    """Start a sign-in in browser A, deliver its callback to browser B: B gets nothing."""
    browser_a, browser_b = rp.test_client(), rp.test_client()
    journey = Journey(browser_a, op).start()
    Journey(browser_b, op).start()  # B has a session of its own, with its own state

    stolen = browser_b.get(journey.callback_url())
    assert stolen.status_code == 400
    assert refusal(stolen) == "state-mismatch"
    assert not signed_in(browser_b)
    assert not signed_in(browser_a)


def test_a_callback_to_a_browser_with_no_session_is_refused(rp, op):
    journey = Journey(rp.test_client(), op).start()
    fresh = rp.test_client()

    response = fresh.get(journey.callback_url())
    assert refusal(response) == "state-mismatch"
    assert not signed_in(fresh)


def test_a_failed_callback_still_spends_the_state(browser, op):
    journey = Journey(browser, op).start()
    op.tamper = lambda claims, header: claims.update(nonce="wrong")
    callback = journey.callback_url()
    assert refusal(browser.get(callback)) == "nonce-invalid"

    op.tamper = None
    assert refusal(browser.get(callback)) == "state-mismatch"


def test_a_callback_without_state_is_refused(browser, op):
    Journey(browser, op).start()

    assert refusal(browser.get("/auth/callback?code=abc")) == "missing-state"


def test_a_repeated_parameter_is_refused(browser, op):
    journey = Journey(browser, op).start()
    state = journey.params["state"]

    response = browser.get(f"/auth/callback?code=abc&state={state}&state={state}")
    assert refusal(response) == "repeated-param"


def test_a_sign_in_left_too_long_is_refused(browser, op, clock):
    journey = Journey(browser, op).start()
    clock.advance(901)

    response = browser.get(journey.callback_url())
    assert refusal(response) == "state-mismatch"  # the whole pre-sign-in session has gone
    assert not signed_in(browser)


def test_a_sign_in_left_too_long_is_refused_even_if_another_one_kept_the_session(
    browser, op, clock
):
    slow = Journey(browser, op).start()
    clock.advance(600)
    Journey(browser, op).start()
    clock.advance(400)

    assert refusal(browser.get(slow.callback_url())) == "state-expired"


def test_several_tabs_may_start_a_sign_in_and_the_first_to_finish_wins(browser, op):
    """The session is replaced at sign-in, pending sign-ins included (nothing planted in a
    session before sign-in survives it); the other tab's callback is refused, harmlessly."""
    first = Journey(browser, op).start("/private")
    second = Journey(browser, op).start("/approve")

    assert local(browser.get(second.callback_url()).location) == "/approve"
    assert refusal(browser.get(first.callback_url())) == "state-mismatch"
    assert signed_in(browser)  # a refused callback does not end the session already there


def test_an_iss_parameter_naming_another_provider_is_refused(browser, op):
    """RFC 9207 §2.4: the mix-up defence."""
    response = Journey(browser, op).start().callback(iss="https://evil.example")

    assert refusal(response) == "invalid-iss-param"
    assert not signed_in(browser)


def test_a_missing_iss_parameter_is_refused_when_the_provider_promises_one(browser, op):
    response = Journey(browser, op).start().callback(iss=None)

    assert refusal(response) == "missing-iss-param"


def test_a_missing_iss_parameter_is_accepted_when_the_provider_does_not_send_one(browser, op):
    op.metadata["authorization_response_iss_parameter_supported"] = False

    Journey(browser, op).sign_in(iss=None)
    assert signed_in(browser)


def test_discovery_naming_another_issuer_is_refused_before_anyone_is_sent_there(browser, op):
    """J02: the discovery document's issuer must be exactly the pinned one."""
    op.metadata["issuer"] = "https://evil.example"

    response = browser.get("/auth/sign-in?next=/private")
    assert response.status_code == 400
    assert refusal(response) == "discovery-issuer-mismatch"


def test_discovery_with_insecure_endpoints_is_refused(browser, op):
    op.metadata["token_endpoint"] = "http://evil.example/token"

    assert refusal(browser.get("/auth/sign-in")) == "discovery-invalid"


def test_a_provider_without_pkce_s256_is_refused(browser, op):
    op.metadata["code_challenge_methods_supported"] = ["plain"]

    assert refusal(browser.get("/auth/sign-in")) == "discovery-invalid"


def test_access_denied_from_the_provider_is_shown_plainly(browser, op):
    journey = Journey(browser, op).start()
    state = journey.params["state"]

    response = browser.get(
        f"/auth/callback?error=access_denied&error_description=%3Cscript%3E&state={state}"
        f"&iss={op.issuer}"
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You could not be signed in" in page
    assert "did not let you use this service" in page
    assert "<script>" not in page
    assert refusal(response) == "authorization-access_denied"
    assert not signed_in(browser)


def test_a_refused_code_at_the_token_endpoint_is_shown_plainly(browser, op):
    op.token_answer = (400, {"error": "invalid_grant"})

    response = Journey(browser, op).start().callback()
    assert response.status_code == 400
    assert refusal(response) == "token-invalid_grant"


def test_an_unreachable_provider_gives_the_degraded_mode_page(browser, op):
    op.down = True

    response = browser.get("/auth/sign-in?next=/private")
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Sign-in is not available right now" in page
    assert refusal(response) == "unavailable"


def test_the_error_page_can_be_replaced_by_the_service(op, tmp_path, clock):
    from secure_access_client import SecureAccess

    app = make_rp_app(op, tmp_path, clock)
    sso: SecureAccess = app.extensions["secure_access"][0]

    @sso.error_page
    def render(error):
        return f"custom: {error.check}", error.status

    op.metadata["issuer"] = "https://evil.example"
    response = app.test_client().get("/auth/sign-in")
    assert (response.status_code, response.get_data(as_text=True)) == (
        400,
        "custom: discovery-issuer-mismatch",
    )
