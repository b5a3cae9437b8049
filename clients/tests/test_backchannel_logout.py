"""The back-channel logout endpoint: Back-Channel Logout 1.0 §2.6-§2.8 (J06; checklist §3 V15).

Named after the RP conformance modules ``oidcc-client-test-rp-backchannel-rpinitlogout`` and
its ``-alg-none``, ``-wrong-alg``, ``-wrong-aud``, ``-wrong-iss``, ``-no-event``,
``-wrong-event`` and ``-with-nonce`` variants, plus replay (``jti``) and the L02 cap on body
size. Every refusal answers 400 and ends nothing.
"""

from __future__ import annotations

import pytest
from fake_op import CLIENT_ID, hs256_with, unsigned
from rp_helpers import Journey, make_rp_app, signed_in

from secure_access_client.tokens import BACKCHANNEL_LOGOUT_EVENT

PATH = "/auth/backchannel-logout"


def send(client, token: str):
    return client.post(PATH, data={"logout_token": token})


def assert_refused(response, check: str) -> None:
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json == {"error": "invalid_request", "error_description": check}


def test_oidcc_client_test_rp_backchannel_rpinitlogout_ends_the_session(rp, browser, op):
    Journey(browser, op).sign_in()
    assert signed_in(browser)

    response = send(rp.test_client(), op.logout_token())
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert not signed_in(browser)
    assert browser.get("/whoami").json["authenticated"] is False


def test_a_logout_by_sid_ends_only_that_session(rp, op):
    laptop, phone = rp.test_client(), rp.test_client()
    Journey(laptop, op).sign_in(sid="sid-laptop")
    Journey(phone, op).sign_in(sid="sid-phone")

    assert send(rp.test_client(), op.logout_token(sid="sid-laptop")).status_code == 200
    assert not signed_in(laptop)
    assert signed_in(phone)


def test_a_logout_by_sub_alone_ends_all_of_that_persons_sessions(rp, op):
    laptop, phone, someone_else = rp.test_client(), rp.test_client(), rp.test_client()
    Journey(laptop, op).sign_in(sid="sid-laptop")
    Journey(phone, op).sign_in(sid="sid-phone")
    Journey(someone_else, op).sign_in(sub="4f1c1c77-5f43-4a8e-9a9e-1f1f6a1d2b3c", sid="sid-3")

    assert send(rp.test_client(), op.logout_token(sid=None)).status_code == 200
    assert not signed_in(laptop)
    assert not signed_in(phone)
    assert signed_in(someone_else)


def test_a_sid_paired_with_another_persons_sub_ends_nothing(rp, op):
    laptop = rp.test_client()
    Journey(laptop, op).sign_in(sid="sid-laptop")

    token = op.logout_token(sid="sid-laptop", sub="4f1c1c77-5f43-4a8e-9a9e-1f1f6a1d2b3c")
    assert send(rp.test_client(), token).status_code == 200
    assert signed_in(laptop)


def test_a_logout_for_no_current_session_still_answers_200(rp, op):
    assert send(rp.test_client(), op.logout_token(sid="never-seen")).status_code == 200


@pytest.fixture
def victim(rp, op):
    """A signed-in browser that no refused Logout Token may sign out."""
    client = rp.test_client()
    Journey(client, op).sign_in()
    yield client
    assert signed_in(client), "a refused Logout Token ended a session"


def test_rp_backchannel_rpinitlogout_alg_none_is_refused(rp, op, victim, clock):
    claims = {
        "iss": op.issuer,
        "aud": CLIENT_ID,
        "iat": int(clock()),
        "exp": int(clock()) + 120,
        "jti": "j1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sid": "sid-1",
    }
    token = unsigned({"alg": "none", "typ": "logout+jwt"}, claims)

    assert_refused(send(rp.test_client(), token), "rp-backchannel-rpinitlogout-alg-none")


def test_rp_backchannel_rpinitlogout_wrong_alg_hs256_is_refused(rp, op, victim, clock):
    claims = {
        "iss": op.issuer,
        "aud": CLIENT_ID,
        "iat": int(clock()),
        "exp": int(clock()) + 120,
        "jti": "j1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sid": "sid-1",
    }
    token = hs256_with(
        op.rsa.as_pem(private=False),
        {"alg": "HS256", "typ": "logout+jwt", "kid": op.rsa.kid},
        claims,
    )

    assert_refused(send(rp.test_client(), token), "rp-backchannel-rpinitlogout-wrong-alg")


def test_rp_backchannel_rpinitlogout_wrong_alg_outside_the_pin_is_refused(rp, op, victim):
    """A genuine ES256 signature from the provider's key, but the service pinned RS256."""
    token = op.logout_token(header__alg="ES256")

    assert_refused(send(rp.test_client(), token), "rp-backchannel-rpinitlogout-wrong-alg")


def test_a_logout_token_with_a_broken_signature_is_refused(rp, op, victim):
    head, body, signature = op.logout_token().split(".")

    assert_refused(
        send(rp.test_client(), f"{head}.{body}.{signature[::-1]}"),
        "rp-backchannel-rpinitlogout-invalid-sig",
    )


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"aud": "another-service"}, "rp-backchannel-rpinitlogout-wrong-aud"),
        ({"aud": None}, "rp-backchannel-rpinitlogout-wrong-aud"),
        ({"iss": "https://evil.example"}, "rp-backchannel-rpinitlogout-wrong-iss"),
        ({"events": None}, "rp-backchannel-rpinitlogout-no-event"),
        (
            {"events": {"http://schemas.openid.net/event/other": {}}},
            "rp-backchannel-rpinitlogout-wrong-event",
        ),
        ({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, "rp-backchannel-rpinitlogout-wrong-event"),
        ({"nonce": "n-0S6_WzA2Mj"}, "rp-backchannel-rpinitlogout-with-nonce"),
        ({"sub": None, "sid": None}, "no-sub-or-sid"),
        ({"jti": None}, "missing-jti"),
        ({"iat": None}, "missing-iat"),
        ({"exp": None}, "missing-exp"),
        ({"header__typ": None}, "wrong-typ"),
        ({"header__typ": "JWT"}, "wrong-typ"),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(value),
)
def test_rp_backchannel_rpinitlogout_claim_checks(changes, check, rp, op, victim):
    assert_refused(send(rp.test_client(), op.logout_token(**changes)), check)


def test_an_expired_logout_token_is_refused(rp, op, victim, clock):
    token = op.logout_token(iat=int(clock()) - 400, exp=int(clock()) - 200)

    assert_refused(send(rp.test_client(), token), "expired")


def test_a_logout_token_issued_in_the_future_is_refused(rp, op, victim, clock):
    token = op.logout_token(iat=int(clock()) + 600, exp=int(clock()) + 700)

    assert_refused(send(rp.test_client(), token), "invalid-iat")


def test_a_replayed_logout_token_is_refused(rp, op):
    token = op.logout_token()
    assert send(rp.test_client(), token).status_code == 200
    browser = rp.test_client()
    Journey(browser, op).sign_in()

    assert_refused(send(rp.test_client(), token), "replayed-jti")
    assert signed_in(browser)


def test_the_jti_is_remembered_by_every_instance_sharing_the_store(op, tmp_path, clock):
    """Two processes of one service (same session folder) share what they have seen."""
    first = make_rp_app(op, tmp_path, clock)
    second = make_rp_app(op, tmp_path, clock)
    token = op.logout_token()

    assert send(first.test_client(), token).status_code == 200
    assert_refused(send(second.test_client(), token), "replayed-jti")


def test_an_id_token_is_not_a_logout_token(rp, op, victim, clock):
    id_token = op.sign(
        {
            "iss": op.issuer,
            "aud": CLIENT_ID,
            "iat": int(clock()),
            "exp": int(clock()) + 60,
            "sub": "8d8ac610-566d-4ef0-9c22-186b2a5ed793",
            "sid": "sid-1",
            "nonce": "x",
        },
        {"alg": "RS256", "typ": "JWT"},
    )

    assert_refused(send(rp.test_client(), id_token), "wrong-typ")


def test_no_logout_token_is_refused(rp):
    assert_refused(rp.test_client().post(PATH, data={}), "missing-token")


def test_two_logout_tokens_are_refused(rp, op):
    response = rp.test_client().post(
        PATH, data={"logout_token": [op.logout_token(), op.logout_token()]}
    )
    assert_refused(response, "missing-token")


def test_only_post_is_accepted(rp):
    assert rp.test_client().get(PATH).status_code == 405


def test_an_oversized_body_is_refused_before_it_is_parsed(rp, op, victim):
    response = rp.test_client().post(PATH, data={"logout_token": "x" * 20_000})

    assert response.status_code == 413
