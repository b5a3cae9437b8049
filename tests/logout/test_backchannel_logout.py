"""Back-Channel Logout 1.0: Logout Tokens to every service in an ended session (I04, I05).

The relying services are a real HTTP server on loopback that records what it receives and
answers as told (200, 500, 400, or hangs). The worker's delivery (``deliver_due``) runs in
the test; time moves with ``time_machine``; waits are bounded and on events, never sleeps.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, OutboxKind, OutboxMessage, OutboxStatus
from idp.oidc.discovery import get_issuer
from idp.oidc.logout_tokens import BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_LIFETIME_SECONDS
from idp.services import outbox
from idp.services.sso_sessions import get_sso_sessions
from idp.services.transaction import transaction
from tests.factories import DEFAULT_PASSWORD, SignIn, csrf_token, make_user
from tests.logout.conftest import (
    HANG,
    Browser,
    decode_with_our_jwks,
    id_token_for,
    register,
)
from tests.mailbox import deliver_all, latest_link

NEW_PASSWORD = "purple elephants marching slowly home"


def rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == OutboxKind.BACKCHANNEL_LOGOUT)
            .order_by(OutboxMessage.id)
        )
    )


def queued() -> list[tuple[str, str, str]]:
    """(client_id, sid, reason) of every queued Logout Token."""
    found = []
    for row in rows():
        payload = outbox.payload_of(row)
        found.append((row.recipient, payload["sid"], payload["reason"]))
    return sorted(found)


def audits(event: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
        )
    )


def rp_logout(browser: Browser, client_id: str, session, alg: str = "RS256") -> None:
    """The relying service sends the browser to /logout with a valid hint: signed out at once."""
    response = browser.client.get(
        "/logout?" + urlencode({"id_token_hint": id_token_for(client_id, session, alg=alg)})
    )
    assert response.status_code == 200, response.status_code


# -- oidcc-backchannel-rp-initiated-logout -------------------------------------------------------


def test_oidcc_backchannel_rp_initiated_logout(
    ada: Browser, pupil_records, school_census, relying_service
) -> None:
    session = ada.use("pupil-records", "school-census")
    rp_logout(ada, "pupil-records", session)

    # I05: the page answered before any service was contacted.
    assert relying_service.received == []
    assert queued() == [
        ("pupil-records", session.sid, "rp_initiated"),  # the initiating service too
        ("school-census", session.sid, "rp_initiated"),
    ]

    deliver_all()
    assert relying_service.wait_for(2)
    posts = relying_service.backchannel_posts()
    assert sorted(p.path for p in posts) == [
        "/pupil-records/backchannel-logout",
        "/school-census/backchannel-logout",
    ]
    jtis = set()
    for post in posts:
        client_id = post.path.split("/")[1]
        # CheckForUnexpectedParametersInBackchannelLogoutRequest: a form with logout_token only.
        assert post.content_type == "application/x-www-form-urlencoded"
        assert post.query == {}
        assert list(post.form) == ["logout_token"]
        [token] = post.form["logout_token"]
        # ValidateLogoutTokenSignature: our JWKS, a pinned algorithm, typ logout+jwt, a kid.
        decoded = decode_with_our_jwks(ada.client, token, ["RS256"])
        assert decoded.header["typ"] == "logout+jwt"
        assert decoded.header["alg"] == "RS256"
        assert decoded.header["kid"]
        claims = decoded.claims
        # ValidateLogoutTokenClaims
        assert claims["iss"] == get_issuer()
        assert claims["aud"] == client_id
        assert claims["iat"] <= datetime.now(UTC).timestamp() + 5
        assert 0 < claims["exp"] - claims["iat"] <= LOGOUT_TOKEN_LIFETIME_SECONDS
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert len(claims["jti"]) >= 16
        jtis.add(claims["jti"])
        # CheckLogoutTokenHasSubOrSid, CheckIdTokenSidMatchesLogoutToken, CheckLogoutTokenNoNonce
        assert claims["sub"] == ada.user.sub
        assert claims["sid"] == session.sid
        assert "nonce" not in claims
    assert len(jtis) == 2

    assert {r.status for r in rows()} == {OutboxStatus.SENT}
    sent = audits("backchannel_logout.sent")
    assert sorted(e.target_id for e in sent) == ["pupil-records", "school-census"]
    assert {e.target_type for e in sent} == {"backchannel_logout"}


def test_the_logout_token_sid_matches_the_id_token_sid(
    ada: Browser, pupil_records, relying_service
):
    """CheckIdTokenSidMatchesLogoutToken: the sid in the service's ID Token is the one sent."""
    session = ada.use("pupil-records")
    hint = id_token_for("pupil-records", session)
    id_token_sid = decode_with_our_jwks(ada.client, hint, ["RS256"]).claims["sid"]
    rp_logout(ada, "pupil-records", session)
    deliver_all()
    [post] = relying_service.backchannel_posts()
    token = post.form["logout_token"][0]
    assert decode_with_our_jwks(ada.client, token, ["RS256"]).claims["sid"] == id_token_sid


def test_a_service_registered_for_es256_gets_an_es256_logout_token(ada: Browser, relying_service):
    register("es-service", backchannel=f"{relying_service.url}/es/bcl", alg="ES256")
    session = ada.use("es-service")
    rp_logout(ada, "es-service", session, alg="ES256")
    deliver_all()
    [post] = relying_service.backchannel_posts()
    decoded = decode_with_our_jwks(ada.client, post.form["logout_token"][0], ["ES256"])
    assert decoded.header["alg"] == "ES256"


def test_services_without_a_backchannel_uri_are_not_contacted(
    ada: Browser, pupil_records, relying_service
) -> None:
    register("no-bcl-service")
    session = ada.use("no-bcl-service", "pupil-records")
    rp_logout(ada, "pupil-records", session)
    assert queued() == [("pupil-records", session.sid, "rp_initiated")]


def test_a_session_with_no_services_queues_nothing(ada: Browser, pupil_records) -> None:
    rp_logout(ada, "pupil-records", ada.session)
    assert rows() == []


def test_the_payload_is_encrypted_and_the_token_never_logged(
    ada: Browser, pupil_records, relying_service, caplog
) -> None:
    session = ada.use("pupil-records")
    rp_logout(ada, "pupil-records", session)
    [row] = rows()
    assert session.sid not in row.payload_ciphertext
    with caplog.at_level(logging.DEBUG):
        deliver_all()
    token = relying_service.backchannel_posts()[0].form["logout_token"][0]
    assert token not in caplog.text
    for event in db.session.scalars(select(AuditEvent)):
        assert token not in repr(event.details)
        assert token not in (event.reason or "")


# -- I05: reliability -------------------------------------------------------------------------


def test_i05_a_500_then_200_is_delivered_on_retry(
    ada: Browser, pupil_records, relying_service
) -> None:
    relying_service.answer(500, 200)
    session = ada.use("pupil-records")
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        rp_logout(ada, "pupil-records", session)
        first = outbox.deliver_due()
        assert (first.sent, first.retried) == (0, 1)
        [row] = rows()
        assert row.status is OutboxStatus.PENDING
        assert row.last_error == "the service answered HTTP 500"
        assert outbox.deliver_due().handled == 0  # not due again until the backoff passes

        clock.shift(timedelta(seconds=31))  # the first retry delay is 30 s
        assert outbox.deliver_due().sent == 1

    assert relying_service.wait_for(2)
    first_post, second_post = relying_service.backchannel_posts()
    assert first_post.form["logout_token"] != second_post.form["logout_token"]  # a fresh token
    [row] = rows()
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    [sent] = audits("backchannel_logout.sent")
    assert sent.target_id == "pupil-records"
    assert sent.details["attempts"] == 2


def test_i05_a_hanging_service_never_holds_up_the_person_and_the_worker_gives_up_the_call(
    app, settings, monkeypatch, ada: Browser, pupil_records, relying_service
) -> None:
    monkeypatch.setitem(
        app.extensions, "settings", settings.model_copy(update={"backchannel_timeout_seconds": 0.2})
    )
    relying_service.default = HANG
    session = ada.use("pupil-records")

    rp_logout(ada, "pupil-records", session)
    # The logout page has answered, and the service has not even been called yet.
    assert relying_service.received == []

    report = outbox.deliver_due()  # the worker: bounded by the timeout, then moves on
    assert relying_service.wait_for(1)  # the call was made and the service sat on it
    assert (report.sent, report.retried) == (0, 1)
    [row] = rows()
    assert row.status is OutboxStatus.PENDING
    assert row.last_error == "no answer within 0.2s"
    relying_service.release.set()


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_i05_busy_or_broken_services_are_retried(
    ada: Browser, pupil_records, relying_service, status: int
) -> None:
    relying_service.answer(status)
    rp_logout(ada, "pupil-records", ada.use("pupil-records"))
    assert outbox.deliver_due().retried == 1
    assert rows()[0].status is OutboxStatus.PENDING
    assert audits("backchannel_logout.failed") == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 302])
def test_i05_a_refusal_is_given_up_at_once_and_audited(
    ada: Browser, pupil_records, relying_service, status: int
) -> None:
    relying_service.answer(status)
    rp_logout(ada, "pupil-records", ada.use("pupil-records"))
    assert outbox.deliver_due().dead == 1
    [row] = rows()
    assert (row.status, row.attempts) == (OutboxStatus.DEAD, 1)
    [failed] = audits("backchannel_logout.failed")
    assert failed.target_id == "pupil-records"
    assert failed.outcome == "failure"
    assert failed.reason == f"the service answered HTTP {status}"


def test_i05_an_unreachable_service_is_retried(ada: Browser) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    register("gone-service", backchannel=f"http://127.0.0.1:{port}/bcl")
    rp_logout(ada, "gone-service", ada.use("gone-service"))
    assert outbox.deliver_due().retried == 1
    assert rows()[0].last_error == "could not connect to the back-channel logout URI"


def test_a_204_counts_as_delivered(ada: Browser, pupil_records, relying_service) -> None:
    relying_service.answer(204)
    rp_logout(ada, "pupil-records", ada.use("pupil-records"))
    assert outbox.deliver_due().sent == 1


def test_the_uri_registered_at_send_time_is_used(
    ada: Browser, pupil_records, relying_service
) -> None:
    rp_logout(ada, "pupil-records", ada.use("pupil-records"))
    with transaction():
        pupil_records.backchannel_logout_uri = f"{relying_service.url}/moved/bcl"
    deliver_all()
    assert [p.path for p in relying_service.backchannel_posts()] == ["/moved/bcl"]


def test_a_service_removed_before_sending_is_given_up(ada: Browser, pupil_records) -> None:
    rp_logout(ada, "pupil-records", ada.use("pupil-records"))
    with transaction():
        db.session.delete(pupil_records)
    assert outbox.deliver_due().dead == 1
    [failed] = audits("backchannel_logout.failed")
    assert (failed.target_id, failed.reason) == (
        "pupil-records",
        "the service is no longer registered",
    )


def test_refresh_tokens_of_the_session_without_offline_access_are_revoked(
    ada: Browser, pupil_records
) -> None:
    """BCL (errata 1) / I04 Also, through the token module's ``revoke_for_session``."""
    tokens = pytest.importorskip("idp.oidc.tokens")
    if not hasattr(tokens, "revoke_for_session"):
        pytest.skip("idp.oidc.tokens.revoke_for_session is not there yet")
    from idp.models.base import utcnow
    from idp.models.tokens import RefreshToken

    session = ada.use("pupil-records")
    later = utcnow() + timedelta(hours=1)
    with transaction():
        for index, offline in enumerate((False, True)):
            db.session.add(
                RefreshToken(
                    token_hash=f"{index:064d}",
                    family_id=f"family-{index}",
                    service_id=pupil_records.id,
                    user_id=ada.user.id,
                    sid=session.sid,
                    scope="openid",
                    offline_access=offline,
                    auth_time=session.auth_time,
                    family_expires_at=later,
                    expires_at=later,
                )
            )
    rp_logout(ada, "pupil-records", session)
    db.session.expire_all()
    revoked = {
        t.offline_access: t.revoked_at is not None for t in db.session.scalars(select(RefreshToken))
    }
    assert revoked == {False: True, True: False}


# -- I04: every way a session ends --------------------------------------------------------------


def second_browser(app, browser: Browser) -> Browser:
    other = Browser(app.test_client(), browser.user)
    SignIn(other.client).completed(browser.user.email)
    return other


def test_i04_sign_out(ada: Browser, pupil_records, school_census) -> None:
    session = ada.use("pupil-records", "school-census")
    page = ada.client.get("/sign-out")
    ada.client.post("/sign-out", data={"csrf_token": csrf_token(page)})
    assert queued() == [
        ("pupil-records", session.sid, "sign_out"),
        ("school-census", session.sid, "sign_out"),
    ]


def test_i04_sign_out_everywhere(app, ada: Browser, pupil_records, school_census) -> None:
    laptop = ada.use("pupil-records")
    phone_browser = second_browser(app, ada)
    phone = phone_browser.use("school-census", "pupil-records")
    page = ada.client.get("/account/sessions")
    ada.client.post("/account/sessions/end-all", data={"csrf_token": csrf_token(page)})
    assert queued() == sorted(
        [
            ("pupil-records", laptop.sid, "user_ended_all"),
            ("pupil-records", phone.sid, "user_ended_all"),
            ("school-census", phone.sid, "user_ended_all"),
        ]
    )


def test_i04_ending_one_device(app, ada: Browser, pupil_records, school_census) -> None:
    ada.use("pupil-records")
    phone_browser = second_browser(app, ada)
    phone = phone_browser.use("school-census")
    page = ada.client.get("/account/sessions")
    ada.client.post(
        "/account/sessions/end", data={"csrf_token": csrf_token(page), "sid": phone.sid}
    )
    assert queued() == [("school-census", phone.sid, "user_ended")]
    assert ada.session is not None


def test_i04_password_change(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    page = ada.client.get("/account/password")
    response = ada.client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(page),
            "current_password": DEFAULT_PASSWORD,
            "new_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 303
    assert queued() == [("pupil-records", session.sid, "password_changed")]


def test_i04_password_reset(app, ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    anonymous = app.test_client()
    page = anonymous.get("/forgot-password")
    anonymous.post(
        "/forgot-password", data={"csrf_token": csrf_token(page), "email": ada.user.email}
    )
    link = latest_link(ada.user.email, "password_reset")  # runs the worker: the reset email
    form = anonymous.get(link)
    done = anonymous.post(link, data={"csrf_token": csrf_token(form), "password": NEW_PASSWORD})
    assert done.status_code == 200
    assert get_sso_sessions().get(ada.cookie) is None
    assert queued() == [("pupil-records", session.sid, "password_changed")]


# -- the whole conformance journey, through the real protocol endpoints ------------------------


def test_oidcc_backchannel_rp_initiated_logout_after_a_real_code_flow(app, relying_service) -> None:
    """Sign in through /authorize and /token, log out with the real ID Token, hear about it.

    CheckIdTokenSidMatchesLogoutToken with a genuine ID Token; then ``prompt=none`` fails
    (I01 Also) and the session's refresh token without offline_access is dead (I04 Also).
    """
    rp_module = pytest.importorskip("tests.oidc.rp")
    if "/token" not in {rule.rule for rule in app.url_map.iter_rules()}:
        pytest.skip("the token endpoint is not registered yet")
    back = "https://school-portal.example/signed-out"
    client = app.test_client()
    rp = rp_module.RP.register(
        client,
        post_logout_redirect_uris=[back],
        backchannel_logout_uri=f"{relying_service.url}/school-portal/backchannel-logout",
    )
    user = make_user(email="ada@school.example")
    code = rp.login("ada@school.example").params["code"]
    tokens = rp.redeem(code).get_json()
    id_token_sid = decode_with_our_jwks(client, tokens["id_token"], ["RS256"]).claims["sid"]

    response = client.get(
        "/logout?"
        + urlencode(
            {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": back, "state": "z"}
        )
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"{back}?state=z"

    deliver_all()
    [post] = relying_service.backchannel_posts()
    claims = decode_with_our_jwks(client, post.form["logout_token"][0], ["RS256"]).claims
    assert (claims["aud"], claims["sub"]) == ("school-portal", user.sub)
    assert claims["sid"] == id_token_sid
    assert "nonce" not in claims

    again = rp.callback(rp.authorize(prompt="none"))
    assert again.params["error"] == "login_required"
    if "refresh_token" in tokens:  # issued by policy even without offline_access
        refreshed = rp.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 400
        assert refreshed.get_json()["error"] == "invalid_grant"
