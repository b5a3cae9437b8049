"""The lane's user grants (idp/oidc/user_grant_lane.py) answer exactly as the full path does.

The lane answers the ordinary, successful ``authorization_code`` redemption and
``refresh_token`` grant (client_secret_basic or client_secret_post). A relying party must not
be able to tell which path answered: same status, headers, JSON members, token header and
claims, and the same audit record. Anything unusual or failing reaches the full path (Flask
and Authlib), which gives the error; each such request is sent through the app (lane first)
and, for a second code or refresh token obtained the same way, through Flask alone, and the
answers compared. Codes and refresh tokens are single use, so the two requests never share one.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import time_machine
from flask import Flask, request_started
from flask import request as current_request
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp import create_app
from idp.config import Settings
from idp.extensions import db
from idp.models import Organisation, RefreshToken, User, UserStatus
from idp.models.base import utcnow
from idp.oidc import tokens
from idp.services import access, audit
from idp.services.clients import get_service
from idp.services.crypto import token_hash
from idp.services.transaction import transaction
from tests.access_helpers import grant, school
from tests.oidc.conftest import EMAIL, token_requests_at_once
from tests.oidc.rp import REDIRECT_URI, RP, basic, half_hash, unverified
from tests.oidc.test_machine_lane import full_path, issued_records, same_headers
from tests.oidc.test_oidcc_codereuse import assert_revoked

OFFLINE = "openid profile email offline_access"
PUPIL_SCOPE = "openid roles offline_access"
#: One nonce for every authorization request, so two ID tokens can be compared claim by claim.
NONCE = "lane-comparison-nonce"
AGENT = "portal/2.0"

Request = dict[str, Any]
Pair = tuple[str, str]  # a code and its PKCE verifier


# -- helpers ------------------------------------------------------------------------------------


def new_code(rp: RP, scope: str = OFFLINE) -> Pair:
    """A fresh code for ``rp`` (the browser's SSO session makes the second sign-in silent)."""
    callback = rp.login(EMAIL, scope=scope, nonce=NONCE)
    assert rp.last is not None
    return callback.code, rp.last.verifier


def new_refresh_token(rp: RP, scope: str = OFFLINE) -> str:
    token: str = rp.tokens(rp.login(EMAIL, scope=scope, nonce=NONCE))["refresh_token"]
    return token


def token_request(rp: RP, params: dict[str, str | None]) -> Request:
    """A /token request as ``rp`` sends it with its authentication method (None: left out)."""
    data = {k: v for k, v in params.items() if v is not None}
    headers = rp.client_auth(data) | {"User-Agent": AGENT}
    return {"data": data, "headers": headers}


def redemption(rp: RP, pair: Pair, **changes: str | None) -> Request:
    code, verifier = pair
    params: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": rp.redirect_uri,
        "code_verifier": verifier,
    }
    return token_request(rp, params | changes)


def refresh(rp: RP, refresh_token: str, **changes: str | None) -> Request:
    params: dict[str, str | None] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(rp, params | changes)


def lane_and_full(
    app: Flask, client: FlaskClient, seen: list[str], lane_request: Request, full_request: Request
) -> tuple[TestResponse, TestResponse, list[str]]:
    """One request through the app (lane first), the other through Flask alone; and which
    paths reached Flask for the first."""
    seen.clear()
    lane = client.post("/token", **lane_request)
    reached = list(seen)
    return lane, full_path(app).post("/token", **full_request), reached


def same_user_grant_answer(
    rp: RP, lane: TestResponse, full: TestResponse, nonce: str | None
) -> None:
    """Two successful answers a relying party cannot tell apart."""
    assert lane.status_code == full.status_code == 200, (lane.get_json(), full.get_json())
    same_headers(lane, full)
    lane_body, full_body = lane.get_json(), full.get_json()
    assert list(lane_body) == list(full_body)
    for name in ("token_type", "expires_in", "scope"):
        assert lane_body[name] == full_body[name], name
    (lane_header, lane_claims), (full_header, full_claims) = (
        unverified(lane_body["access_token"]),
        unverified(full_body["access_token"]),
    )
    assert lane_header == full_header
    assert without(lane_claims, "jti", "iat", "exp") == without(full_claims, "jti", "iat", "exp")
    assert lane_claims["exp"] - lane_claims["iat"] == full_claims["exp"] - full_claims["iat"]
    assert lane_claims["jti"] != full_claims["jti"]
    # Each ID token is valid (signature, iss, aud, nonce, at_hash for its own access token).
    lane_id, full_id = (
        rp.validate_id_token(body["id_token"], nonce=nonce, access_token=body["access_token"])
        for body in (lane_body, full_body)
    )
    assert unverified(lane_body["id_token"])[0] == unverified(full_body["id_token"])[0]
    assert without(lane_id, "iat", "exp", "at_hash") == without(full_id, "iat", "exp", "at_hash")
    assert lane_id["exp"] - lane_id["iat"] == full_id["exp"] - full_id["iat"]
    assert lane_id["at_hash"] == half_hash(lane_body["access_token"], lane_header["alg"])
    assert lane_body["refresh_token"]
    assert full_body["refresh_token"]
    assert lane_body["refresh_token"] != full_body["refresh_token"]


def without(mapping: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in names}


def same_audit_record(rp: RP, user: User, lane: TestResponse, full: TestResponse) -> None:
    """The last two ``oidc.token_issued`` records: the lane's, then the full path's."""
    lane_row, full_row = issued_records()[-2:]
    for row in (lane_row, full_row):
        assert (row.actor_id, row.target_id, row.target_type) == (rp.client_id, user.sub, "user")
        assert (row.user_agent, row.ip) == (AGENT, "127.0.0.1")
        assert row.details["family_id"]
    assert without(lane_row.details, "jti", "family_id") == without(
        full_row.details, "jti", "family_id"
    )
    for row, response in ((lane_row, lane), (full_row, full)):
        assert row.details["jti"] == unverified(response.get_json()["access_token"])[1]["jti"]
        assert row.request_id == response.headers["X-Request-Id"]
    assert lane_row.details["family_id"] != full_row.details["family_id"]


def same_refusal(lane: TestResponse, full: TestResponse, reached: list[str]) -> None:
    """The lane passed the request on, and the answer is the full path's."""
    assert reached == ["/token"]
    assert lane.status_code == full.status_code
    assert lane.status_code != 500
    lane_body, full_body = lane.get_json(), full.get_json()
    assert lane_body.get("error") == full_body.get("error")
    assert set(lane_body) == set(full_body)
    if lane.status_code != 200:
        same_headers(lane, full)


def change_status(user: User, status: UserStatus) -> None:
    """An administrator changes the account's status (nothing else: no tokens revoked)."""
    with transaction():
        user.status = status


@pytest.fixture
def other(client: FlaskClient) -> RP:
    return RP.register(client, client_id="other-portal")


@pytest.fixture(params=["client_secret_basic", "client_secret_post"])
def portal(request: pytest.FixtureRequest, client: FlaskClient) -> RP:
    """A relying service with either of the methods the lane serves."""
    if request.param == "client_secret_basic":
        return RP.register(client)
    return RP.register(client, client_id="census-portal", auth_method=request.param)


# -- 1, 2: the ordinary successful grants are the lane's, and the full path's answer ----------


def test_an_ordinary_code_redemption_is_answered_by_the_lane_as_the_full_path_would(
    app, client, portal, user, flask_requests
):
    lane_code, full_code = new_code(portal), new_code(portal)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, redemption(portal, lane_code), redemption(portal, full_code)
    )
    same_user_grant_answer(portal, lane, full, NONCE)
    assert reached == []  # the lane answered
    same_audit_record(portal, user, lane, full)
    assert issued_records()[-1].details["grant_type"] == "authorization_code"


def test_an_ordinary_refresh_is_answered_by_the_lane_as_the_full_path_would(
    app, client, portal, user, flask_requests
):
    lane_token, full_token = new_refresh_token(portal), new_refresh_token(portal)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, refresh(portal, lane_token), refresh(portal, full_token)
    )
    same_user_grant_answer(portal, lane, full, None)  # OIDC Core §12.2: no nonce
    assert reached == []
    same_audit_record(portal, user, lane, full)
    assert issued_records()[-1].details["grant_type"] == "refresh_token"
    assert lane.get_json()["scope"] == OFFLINE
    # Rotated: the new refresh token works for a further refresh, either way.
    for response in (lane, full):
        again = client.post("/token", **refresh(portal, response.get_json()["refresh_token"]))
        assert again.status_code == 200
        assert again.get_json()["scope"] == OFFLINE


# -- 3: every unusual or failing code redemption is the full path's ---------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"code_verifier": "b" * 43}, id="wrong code_verifier"),
        pytest.param({"code_verifier": None}, id="missing code_verifier"),
        pytest.param({"code_verifier": "a" * 42 + "!"}, id="code_verifier with a bad character"),
        pytest.param({"code_verifier": "a" * 43 + "\n"}, id="code_verifier with a newline"),
        pytest.param({"redirect_uri": REDIRECT_URI + "/other"}, id="wrong redirect_uri"),
        pytest.param({"redirect_uri": None}, id="redirect_uri left out"),
        pytest.param({"code": "x" * 43}, id="unknown code"),
        pytest.param({"code": ""}, id="empty code"),
        pytest.param({"resource": "https://api.school.example"}, id="an extra parameter"),
        pytest.param({"scope": "openid"}, id="scope on the code grant"),
        pytest.param({"nonce": NONCE}, id="an authorization parameter"),
    ],
)
def test_an_unusual_code_redemption_gets_the_full_paths_answer(
    app, client, rp, user, flask_requests, changes
):
    lane_code, full_code = new_code(rp), new_code(rp)
    lane, full, reached = lane_and_full(
        app,
        client,
        flask_requests,
        redemption(rp, lane_code, **changes),
        redemption(rp, full_code, **changes),
    )
    same_refusal(lane, full, reached)
    if full.status_code == 200:  # the full path ignores what it does not use
        same_user_grant_answer(rp, lane, full, NONCE)


def test_another_clients_code_is_the_full_paths_invalid_grant(
    app, client, rp, other, user, flask_requests
):
    lane_code, full_code = new_code(rp), new_code(rp)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, redemption(other, lane_code), redemption(other, full_code)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"  # G03


def test_a_code_presented_again_is_the_full_paths_and_revokes_what_it_issued(
    app, client, rp, user, flask_requests
):
    lane_code, full_code = new_code(rp), new_code(rp)
    first_lane = client.post("/token", **redemption(rp, lane_code))
    first_full = full_path(app).post("/token", **redemption(rp, full_code))
    assert first_lane.status_code == first_full.status_code == 200
    lane, full, reached = lane_and_full(
        app, client, flask_requests, redemption(rp, lane_code), redemption(rp, full_code)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"
    for first in (first_lane, first_full):  # G02: userinfo and refresh both refuse them now
        assert_revoked(rp, first.get_json())


def test_an_expired_code_is_the_full_paths_invalid_grant(app, client, rp, user, flask_requests):
    lane_code, full_code = new_code(rp), new_code(rp)
    with time_machine.travel(utcnow() + timedelta(seconds=61)):  # G01: 60 seconds
        lane, full, reached = lane_and_full(
            app, client, flask_requests, redemption(rp, lane_code), redemption(rp, full_code)
        )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"


def test_a_code_of_a_user_deactivated_since_is_the_full_paths_refusal(
    app, client, rp, user, flask_requests
):
    lane_code, full_code = new_code(rp), new_code(rp)
    change_status(user, UserStatus.DEACTIVATED)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, redemption(rp, lane_code), redemption(rp, full_code)
    )
    same_refusal(lane, full, reached)
    assert full.status_code == 400
    assert refresh_rows(rp, user) == []  # no family written for someone no longer active


def test_a_code_for_a_service_no_longer_registered_for_codes_is_the_full_paths(
    app, client, rp, user, flask_requests
):
    lane_code, full_code = new_code(rp), new_code(rp)
    with transaction():  # an administrator changes the registration after the sign-in
        get_service(rp.client_id).grant_types = ["refresh_token"]
    lane, full, reached = lane_and_full(
        app, client, flask_requests, redemption(rp, lane_code), redemption(rp, full_code)
    )
    same_refusal(lane, full, reached)
    assert full.status_code in (400, 401)


# -- 3, 4: a client that does not authenticate plainly ------------------------------------------


def misauthenticated(rp: RP, request: Request, how: str) -> Request:
    """``request`` (from a client_secret_basic ``rp``) with its client authentication spoilt."""
    data, headers = dict(request["data"]), dict(request["headers"])
    in_body = {"client_id": rp.client_id, "client_secret": rp.secret or ""}
    if how == "wrong secret":
        headers |= basic(rp.client_id, "nope")
    elif how == "the method it did not register":
        del headers["Authorization"]
        data |= in_body
    else:  # RFC 6749 §2.3: one method per request
        data |= in_body
    return {"data": data, "headers": headers}


@pytest.mark.parametrize(
    "how", ["wrong secret", "the method it did not register", "two methods at once"]
)
@pytest.mark.parametrize("grant_type", ["authorization_code", "refresh_token"])
def test_a_client_that_does_not_authenticate_plainly_gets_the_full_paths_answer(
    app, client, rp, user, flask_requests, grant_type, how
):
    if grant_type == "authorization_code":
        lane_request, full_request = redemption(rp, new_code(rp)), redemption(rp, new_code(rp))
    else:
        lane_request, full_request = (refresh(rp, new_refresh_token(rp)) for _ in range(2))
    lane, full, reached = lane_and_full(
        app,
        client,
        flask_requests,
        misauthenticated(rp, lane_request, how),
        misauthenticated(rp, full_request, how),
    )
    same_refusal(lane, full, reached)
    assert full.status_code in (400, 401)
    # Nothing was spent: the code or refresh token still works, sent properly.
    assert client.post("/token", **lane_request).status_code == 200
    assert full_path(app).post("/token", **full_request).status_code == 200


# -- 4: every unusual or failing refresh is the full path's ------------------------------------


def test_a_used_refresh_token_is_the_full_paths_and_revokes_the_family(
    app, client, rp, user, flask_requests
):
    lane_token, full_token = new_refresh_token(rp), new_refresh_token(rp)
    lane_next = client.post("/token", **refresh(rp, lane_token)).get_json()["refresh_token"]
    full_next = full_path(app).post("/token", **refresh(rp, full_token)).get_json()["refresh_token"]
    lane, full, reached = lane_and_full(
        app, client, flask_requests, refresh(rp, lane_token), refresh(rp, full_token)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"
    for successor in (lane_next, full_next):  # G05: the family died
        assert rp.refresh(successor).get_json()["error"] == "invalid_grant"


def test_a_revoked_refresh_token_is_the_full_paths_invalid_grant(
    app, client, rp, user, flask_requests
):
    lane_token, full_token = new_refresh_token(rp), new_refresh_token(rp)
    for token in (lane_token, full_token):  # RFC 7009
        assert rp.post("/revoke", {"token": token}).status_code == 200
    lane, full, reached = lane_and_full(
        app, client, flask_requests, refresh(rp, lane_token), refresh(rp, full_token)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"


def test_another_clients_refresh_token_is_the_full_paths_invalid_grant(
    app, client, rp, other, user, flask_requests
):
    lane_token, full_token = new_refresh_token(rp), new_refresh_token(rp)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, refresh(other, lane_token), refresh(other, full_token)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"
    assert client.post("/token", **refresh(rp, lane_token)).status_code == 200  # still rp's


def test_a_refresh_token_of_an_expired_family_is_the_full_paths_invalid_grant(
    app, client, user, flask_requests
):
    rp = RP.register(client, refresh_token_lifetime=3600)
    lane_token, full_token = new_refresh_token(rp), new_refresh_token(rp)
    with time_machine.travel(utcnow() + timedelta(minutes=61)):
        lane, full, reached = lane_and_full(
            app, client, flask_requests, refresh(rp, lane_token), refresh(rp, full_token)
        )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"


def test_a_deactivated_users_refresh_is_the_full_paths_invalid_grant(
    app, client, rp, user, flask_requests
):
    lane_token, full_token = new_refresh_token(rp), new_refresh_token(rp)
    change_status(user, UserStatus.DEACTIVATED)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, refresh(rp, lane_token), refresh(rp, full_token)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"  # E06


def pupil_data(client: FlaskClient, user: User) -> tuple[RP, Organisation]:
    """A service only people granted access may use (issue 7), and ``user``'s school there."""
    rp = RP.register(
        client,
        client_id="pupil-data",
        scopes=("openid", "roles", "offline_access"),
        access_policy="granted",
        roles=[{"code": "viewer", "name": "Viewer"}],
    )
    hilltop = school("Hill Top Primary", "100001")
    grant(user, hilltop, "pupil-data", ["viewer"])
    return rp, hilltop


def take_access_away(user: User, org: Organisation) -> None:
    with transaction():
        access.remove_access(user, org, get_service("pupil-data"), actor="test")


def test_a_refresh_after_access_was_taken_away_is_the_full_paths_invalid_grant(
    app, client, user, flask_requests
):
    rp, hilltop = pupil_data(client, user)
    lane_token, full_token = new_refresh_token(rp, PUPIL_SCOPE), new_refresh_token(rp, PUPIL_SCOPE)
    take_access_away(user, hilltop)
    lane, full, reached = lane_and_full(
        app, client, flask_requests, refresh(rp, lane_token), refresh(rp, full_token)
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_grant"


def test_a_refresh_with_a_scope_is_the_full_paths_and_narrows(
    app, client, rp, user, flask_requests
):
    lane_token, full_token = new_refresh_token(rp), new_refresh_token(rp)
    lane, full, reached = lane_and_full(
        app,
        client,
        flask_requests,
        refresh(rp, lane_token, scope="openid"),
        refresh(rp, full_token, scope="openid"),
    )
    same_refusal(lane, full, reached)
    same_user_grant_answer(rp, lane, full, None)
    assert lane.get_json()["scope"] == "openid"
    assert unverified(lane.get_json()["access_token"])[1]["scope"] == "openid"
    again = client.post("/token", **refresh(rp, lane.get_json()["refresh_token"]))
    assert again.get_json()["scope"] == OFFLINE  # RFC 6749 §6: the token's scope is unchanged


def test_a_refresh_asking_for_more_scope_is_the_full_paths_invalid_scope(
    app, client, rp, user, flask_requests
):
    scope = "openid offline_access"
    lane_token, full_token = new_refresh_token(rp, scope), new_refresh_token(rp, scope)
    lane, full, reached = lane_and_full(
        app,
        client,
        flask_requests,
        refresh(rp, lane_token, scope=OFFLINE),
        refresh(rp, full_token, scope=OFFLINE),
    )
    same_refusal(lane, full, reached)
    assert full.get_json()["error"] == "invalid_scope"


# -- 5: races -------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(3))
def test_one_refresh_token_sent_four_times_at_once_wins_at_most_once(app, rp, user, attempt):
    """Mirrors test_G05_concurrent_uses_of_one_refresh_token_at_most_one_wins, lane in front."""
    request = refresh(rp, new_refresh_token(rp))
    results = token_requests_at_once(app, request["data"], request["headers"])
    winners = [body for status, body in results if status == 200]
    assert len(winners) <= 1
    assert all(body["error"] == "invalid_grant" for status, body in results if status != 200)
    for body in winners:  # the reuse revoked the family, the winner's new token included
        assert rp.refresh(body["refresh_token"]).get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("attempt", range(3))
def test_one_code_sent_four_times_at_once_wins_at_most_once(app, rp, user, attempt):
    """Mirrors test_V3_concurrent_redemptions_at_most_one_wins_and_its_tokens_die."""
    request = redemption(rp, new_code(rp))
    results = token_requests_at_once(app, request["data"], request["headers"])
    winners = [body for status, body in results if status == 200]
    assert len(winners) <= 1
    assert all(body["error"] == "invalid_grant" for status, body in results if status != 200)
    for body in winners:  # the reuse revoked what the winner got (G02)
        assert_revoked(rp, body)


# -- 6: the lane turned off ------------------------------------------------------------------


def test_with_the_lane_off_a_code_redemption_still_works_through_flask(
    settings: Settings, app: Flask, user: User
) -> None:
    plain = create_app(settings.model_copy(update={"machine_lane": False}))
    seen: list[str] = []
    request_started.connect(
        lambda sender, **_: seen.append(current_request.path), plain, weak=False
    )
    rp = RP.register(plain.test_client())
    callback = rp.login(EMAIL, scope=OFFLINE)
    seen.clear()
    body = rp.tokens(callback)
    assert seen == ["/token"]  # Flask answered
    assert rp.last is not None
    rp.validate_id_token(body["id_token"], nonce=rp.last.nonce, access_token=body["access_token"])
    assert rp.refresh(body["refresh_token"]).status_code == 200
    assert seen == ["/token", "/.well-known/jwks.json", "/token"]


# -- 7: a refresh refused because the person may not use the service is refused for good -------


def refused_by_flask(client: FlaskClient, seen: list[str], request: Request) -> None:
    """The lane passes ``request`` on and the full path refuses it: invalid_grant."""
    seen.clear()
    response = client.post("/token", **request)
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_grant")
    assert seen == ["/token"]


@pytest.mark.parametrize("undone", ["access granted again", "reactivated"])
def test_a_refresh_refused_for_the_person_stays_refused_once_that_is_undone(
    client, user, flask_requests, undone
):
    """Issue 7: refused once, refused for good. Giving back what was taken does not revive
    the refresh token; a new sign-in's works."""
    rp, hilltop = pupil_data(client, user)
    if undone == "access granted again":
        take_away = partial(take_access_away, user, hilltop)
        give_back = partial(grant, user, hilltop, "pupil-data", ["viewer"])
    else:  # by a status change alone, so that nothing else revokes the token
        take_away = partial(change_status, user, UserStatus.DEACTIVATED)
        give_back = partial(change_status, user, UserStatus.ACTIVE)
    token = new_refresh_token(rp, PUPIL_SCOPE)
    take_away()
    refused_by_flask(client, flask_requests, refresh(rp, token))
    give_back()
    refused_by_flask(client, flask_requests, refresh(rp, token))
    renewed = client.post("/token", **refresh(rp, new_refresh_token(rp, PUPIL_SCOPE)))
    assert renewed.status_code == 200, renewed.get_json()


# -- 8: a failure after the lane's one write: taken back, then the full path answers ----------


def failing_once(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """Make our own ``module.name`` raise once (the lane's audit record, run after its write)."""
    original, failures = getattr(module, name), [RuntimeError(f"{name} failed")]

    def once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, once)


def refresh_rows(rp: RP, user: User) -> list[RefreshToken]:
    db.session.expire_all()
    service = get_service(rp.client_id)
    where = (RefreshToken.user_id == user.id, RefreshToken.service_id == service.id)
    return list(db.session.scalars(select(RefreshToken).where(*where).order_by(RefreshToken.id)))


def test_a_code_redemption_failing_after_its_write_is_the_full_paths_with_one_set_of_tokens(
    client, rp, user, flask_requests, monkeypatch
):
    code = new_code(rp)
    failing_once(monkeypatch, audit, "record_routine")
    flask_requests.clear()
    response = client.post("/token", **redemption(rp, code))
    assert flask_requests == ["/token"]  # the lane took its write back and handed on
    assert response.status_code == 200, response.get_json()
    rows = refresh_rows(rp, user)
    assert [row.token_hash for row in rows] == [token_hash(response.get_json()["refresh_token"])]
    # G02 still holds for the tokens the client got: a replay revokes them.
    refused_by_flask(client, flask_requests, redemption(rp, code))
    assert [row.revoked_at is not None for row in refresh_rows(rp, user)] == [True]


def test_a_refresh_failing_after_its_rotation_is_the_full_paths_and_the_family_lives(
    client, rp, user, flask_requests, monkeypatch
):
    token = new_refresh_token(rp)
    failing_once(monkeypatch, audit, "record_routine")
    flask_requests.clear()
    response = client.post("/token", **refresh(rp, token))
    assert flask_requests == ["/token"]
    assert response.status_code == 200, response.get_json()  # not reuse: the rotation was undone
    rows = refresh_rows(rp, user)
    assert [row.revoked_at for row in rows] == [None, None]
    assert rows[0].token_hash == token_hash(token)
    assert rows[0].used_at is not None
    assert rows[1].token_hash == token_hash(response.get_json()["refresh_token"])
    assert (
        client.post("/token", **refresh(rp, response.get_json()["refresh_token"])).status_code
        == 200
    )


def test_when_the_write_cannot_be_taken_back_the_lane_answers_503_itself(
    client, rp, user, flask_requests, monkeypatch
):
    """The last resort (PostgreSQL, where the write commits by itself): handed on, the full
    path would take the rotated token for reuse and revoke the family."""
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("on SQLite the failed commit rolls the write back: nothing to take back")
    token = new_refresh_token(rp)
    failing_once(monkeypatch, audit, "record_routine")
    failing_once(monkeypatch, tokens, "take_back_refresh_token")
    flask_requests.clear()
    response = client.post("/token", **refresh(rp, token))
    assert flask_requests == []
    assert (response.status_code, response.mimetype) == (503, "application/json")
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert (response.headers["Retry-After"], response.headers["Cache-Control"]) == (
        "30",
        "no-store",
    )
    assert [row.revoked_at for row in refresh_rows(rp, user)] == [None, None]  # no reuse found
