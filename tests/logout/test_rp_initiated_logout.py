"""RP-Initiated Logout 1.0 at ``/logout``: the conformance suite's modules, re-created (I01-I03).

Each ``test_oidcc_*`` is named after the OpenID Foundation conformance module it re-creates
(security-requirements.md §2.1). A relying service sends the browser to /logout; with a valid
``id_token_hint`` for the person signed in here we sign out at once and, if the
``post_logout_redirect_uri`` is registered exactly, go back there with ``state``. Anything
less asks the person first and never redirects.
"""

from __future__ import annotations

import base64
import functools
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, OutboxKind, OutboxMessage
from idp.models.service import ServiceStatus
from idp.oidc.logout import validate_logout_request, with_state
from idp.oidc.logout_tokens import build_logout_token
from idp.services.sso_sessions import get_sso_sessions
from idp.services.transaction import transaction
from tests.factories import csrf_token, page_text
from tests.logout.conftest import SIGNED_OUT_URI, Browser, id_token_for, signed_in_browser

CONFIRM_TITLE = "Sign out of Secure Access?"
DONE_TITLE = "You have signed out"


def logout(browser: Browser, method: str = "GET", **params: str):
    if method == "POST":
        return browser.client.post("/logout", data=params)
    return browser.client.get("/logout?" + urlencode(params))


def heading(response) -> str:
    from bs4 import BeautifulSoup

    h1 = BeautifulSoup(response.get_data(as_text=True), "html.parser").find("h1")
    return h1.get_text(strip=True) if h1 else ""


def confirm(browser: Browser, page):
    """Press "Sign out" on the confirmation page, sending exactly what the page's form holds."""
    from bs4 import BeautifulSoup

    form = BeautifulSoup(page.get_data(as_text=True), "html.parser").find("form")
    assert form is not None
    assert form["action"] == "/logout/confirm"
    data = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
    return browser.client.post(form["action"], data=data)


def assert_signed_out(browser: Browser, cookie: str) -> None:
    assert get_sso_sessions().get(cookie) is None
    assert browser.client.get("/account").status_code in (302, 303)


def assert_still_signed_in(browser: Browser, cookie: str) -> None:
    assert get_sso_sessions().get(cookie) is not None
    assert browser.client.get("/account").status_code == 200


def assert_our_page(response, title: str) -> None:
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert heading(response) == title


def assert_confirmation_without_redirect(browser: Browser, response, cookie: str) -> None:
    """I03: asked, not signed out, not redirected; the form carries a CSRF token."""
    assert_our_page(response, CONFIRM_TITLE)
    assert csrf_token(response)
    assert_still_signed_in(browser, cookie)


# -- the conformance modules -------------------------------------------------------------------


def test_oidcc_rp_initiated_logout(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    cookie = ada.cookie
    hint = id_token_for("pupil-records", session)

    response = logout(
        ada, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT_URI, state="st4te-42"
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"{SIGNED_OUT_URI}?state=st4te-42"
    assert (
        "Max-Age=0" in response.headers["Set-Cookie"]
        or "expires=Thu, 01 Jan 1970" in (response.headers["Set-Cookie"])
    )
    assert_signed_out(ada, cookie)
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "sign_out")).all()
    assert (event.target_id, event.details["how"]) == (ada.user.sub, "rp_initiated")
    assert event.details["sids"] == [session.sid]


def test_oidcc_rp_initiated_logout_then_prompt_none_is_login_required(
    app, ada: Browser, pupil_records
) -> None:
    """I01 Also: after logout, ``prompt=none`` at /authorize answers ``login_required``."""
    if "/authorize" not in {rule.rule for rule in app.url_map.iter_rules()}:
        pytest.skip("the authorization endpoint is not registered yet")
    session = ada.use("pupil-records")
    logout(ada, id_token_hint=id_token_for("pupil-records", session))
    params = {
        "response_type": "code",
        "client_id": "pupil-records",
        "redirect_uri": "https://pupil-records.example/callback",
        "scope": "openid",
        "state": "s1",
        "nonce": "n1",
        "prompt": "none",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    response = ada.client.get("/authorize?" + urlencode(params))
    assert response.status_code in (302, 303)
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "pupil-records.example"
    assert parse_qs(location.query)["error"] == ["login_required"]


def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(
    ada: Browser, pupil_records
) -> None:
    session = ada.use("pupil-records")
    cookie = ada.cookie
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        post_logout_redirect_uri="https://attacker.example/signed-out",
        state="s",
    )
    assert_our_page(response, DONE_TITLE)  # I02: signed out (valid hint), not redirected
    assert_signed_out(ada, cookie)


def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(
    ada: Browser, pupil_records
) -> None:
    session = ada.use("pupil-records")
    cookie = ada.cookie
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        post_logout_redirect_uri=SIGNED_OUT_URI + "?foo=bar",
        state="s",
    )
    assert_our_page(response, DONE_TITLE)
    assert_signed_out(ada, cookie)


def test_oidcc_rp_initiated_logout_bad_id_token_hint(ada: Browser, pupil_records) -> None:
    """A hint signed by another key, even one claiming our kid, is not ours (I03)."""
    session = ada.use("pupil-records")
    cookie = ada.cookie
    genuine = id_token_for("pupil-records", session)
    header = jwt.decode(genuine, get_keyring_keys()).header
    other, _ = _attacker_keys()
    claims = jwt.decode(genuine, get_keyring_keys()).claims
    forged = jwt.encode({"alg": "RS256", "kid": header["kid"], "typ": "JWT"}, claims, other)

    response = logout(ada, id_token_hint=forged, post_logout_redirect_uri=SIGNED_OUT_URI, state="s")
    assert_confirmation_without_redirect(ada, response, cookie)


def test_oidcc_rp_initiated_logout_modified_id_token_hint(ada: Browser, pupil_records) -> None:
    """The genuine hint with its header changed to ``alg: none`` and no signature (I03)."""
    session = ada.use("pupil-records")
    cookie = ada.cookie
    header_b64, payload_b64, _ = id_token_for("pupil-records", session).split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    header["alg"] = "none"
    none_header = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    modified = f"{none_header}.{payload_b64}."

    response = logout(
        ada, id_token_hint=modified, post_logout_redirect_uri=SIGNED_OUT_URI, state="s"
    )
    assert_confirmation_without_redirect(ada, response, cookie)


def test_oidcc_rp_initiated_logout_no_id_token_hint(ada: Browser, pupil_records) -> None:
    """client_id and a registered URI, but no hint: ask, and never redirect (I02, I03)."""
    ada.use("pupil-records")
    cookie = ada.cookie
    page = logout(
        ada, client_id="pupil-records", post_logout_redirect_uri=SIGNED_OUT_URI, state="s"
    )
    assert_confirmation_without_redirect(ada, page, cookie)
    assert "Pupil records" in page_text(page)  # the services this session is signed in to

    done = confirm(ada, page)
    assert_our_page(done, DONE_TITLE)
    assert_signed_out(ada, cookie)


def test_oidcc_rp_initiated_logout_no_params(ada: Browser) -> None:
    cookie = ada.cookie
    page = logout(ada)
    assert_confirmation_without_redirect(ada, page, cookie)
    done = confirm(ada, page)
    assert_our_page(done, DONE_TITLE)
    assert_signed_out(ada, cookie)


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    cookie = ada.cookie
    response = logout(ada, id_token_hint=id_token_for("pupil-records", session), state="s")
    assert_our_page(response, DONE_TITLE)
    assert_signed_out(ada, cookie)


def test_oidcc_rp_initiated_logout_only_state(ada: Browser) -> None:
    cookie = ada.cookie
    page = logout(ada, state="only-state")
    assert_confirmation_without_redirect(ada, page, cookie)
    done = confirm(ada, page)
    assert_our_page(done, DONE_TITLE)
    assert_signed_out(ada, cookie)


def test_oidcc_rp_initiated_logout_no_state(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    cookie = ada.cookie
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        post_logout_redirect_uri=SIGNED_OUT_URI,
    )
    assert response.status_code == 303
    assert response.headers["Location"] == SIGNED_OUT_URI
    assert_signed_out(ada, cookie)


# -- I01: the rest of the request rules ---------------------------------------------------------


def get_keyring_keys():
    from idp.oidc.keys import get_keyring

    return get_keyring().verification_keys().key_set


def test_a_form_post_from_the_relying_service_works_like_get(ada: Browser, pupil_records) -> None:
    """RPIL §2: the OP supports GET and POST; the relying service's form has no CSRF token."""
    session = ada.use("pupil-records")
    cookie = ada.cookie
    response = logout(
        ada,
        "POST",
        id_token_hint=id_token_for("pupil-records", session),
        post_logout_redirect_uri=SIGNED_OUT_URI,
        state="p",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"{SIGNED_OUT_URI}?state=p"
    assert_signed_out(ada, cookie)


def test_an_expired_hint_is_accepted(ada: Browser, pupil_records) -> None:
    """RPIL §2 / I01: an ID Token past its exp is still a valid hint."""
    session = ada.use("pupil-records")
    cookie = ada.cookie
    old = id_token_for(
        "pupil-records", session, now=int(datetime.now(UTC).timestamp()) - 7200, lifetime=600
    )
    response = logout(ada, id_token_hint=old, post_logout_redirect_uri=SIGNED_OUT_URI)
    assert response.status_code == 303
    assert_signed_out(ada, cookie)


def test_client_id_must_equal_the_hints_aud(ada: Browser, pupil_records, school_census) -> None:
    session = ada.use("pupil-records", "school-census")
    cookie = ada.cookie
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        client_id="school-census",
        post_logout_redirect_uri=SIGNED_OUT_URI,
        state="s",
    )
    assert_confirmation_without_redirect(ada, response, cookie)


def test_client_id_equal_to_aud_is_fine(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        client_id="pupil-records",
        post_logout_redirect_uri=SIGNED_OUT_URI,
    )
    assert response.headers["Location"] == SIGNED_OUT_URI


def test_a_registered_uri_of_another_service_is_not_followed(
    ada: Browser, pupil_records, relying_service
) -> None:
    from tests.logout.conftest import register

    register("other-service", post_logout=("https://other-service.example/bye",))
    session = ada.use("pupil-records")
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        post_logout_redirect_uri="https://other-service.example/bye",
    )
    assert_our_page(response, DONE_TITLE)


def test_a_disabled_service_gets_no_redirect(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    with transaction():
        pupil_records.status = ServiceStatus.DISABLED
    response = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", session),
        post_logout_redirect_uri=SIGNED_OUT_URI,
    )
    assert_our_page(response, DONE_TITLE)


def test_a_valid_hint_for_someone_else_asks_first(app, ada: Browser, pupil_records) -> None:
    """A hint about another person (or another of one's sessions) is suspect (RPIL §2): ask.

    Having asked, the redirect is allowed: the hint proves which service is asking.
    """
    grace = signed_in_browser(app, "grace@school.example")
    grace_session = grace.use("pupil-records")
    ada.use("pupil-records")
    cookie = ada.cookie
    page = logout(
        ada,
        id_token_hint=id_token_for("pupil-records", grace_session),
        post_logout_redirect_uri=SIGNED_OUT_URI,
        state="s",
    )
    assert_confirmation_without_redirect(ada, page, cookie)
    assert get_sso_sessions().get(grace.cookie) is not None  # not Grace's session either

    done = confirm(ada, page)
    assert done.status_code == 303
    assert done.headers["Location"] == f"{SIGNED_OUT_URI}?state=s"
    assert_signed_out(ada, cookie)
    assert get_sso_sessions().get(grace.cookie) is not None


def test_not_signed_in_with_a_valid_hint_still_goes_back(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    hint = id_token_for("pupil-records", session)
    logout(ada, id_token_hint=hint)
    again = logout(ada, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT_URI, state="2")
    assert again.status_code == 303
    assert again.headers["Location"] == f"{SIGNED_OUT_URI}?state=2"


def test_not_signed_in_without_a_hint_shows_our_page(client) -> None:
    response = client.get("/logout?" + urlencode({"post_logout_redirect_uri": SIGNED_OUT_URI}))
    assert_our_page(response, DONE_TITLE)


def test_the_confirmation_needs_its_csrf_token(ada: Browser) -> None:
    """E07: only the relying service's request is CSRF-exempt, not the person's choice."""
    cookie = ada.cookie
    response = ada.client.post("/logout/confirm", data={})
    assert response.status_code == 400
    assert_still_signed_in(ada, cookie)


def test_a_logout_token_is_not_an_id_token_hint(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    cookie = ada.cookie
    token = build_logout_token("pupil-records", sub=session.sub, sid=session.sid)
    response = logout(ada, id_token_hint=token, post_logout_redirect_uri=SIGNED_OUT_URI)
    assert_confirmation_without_redirect(ada, response, cookie)


def test_ending_the_session_queues_back_channel_logout(ada: Browser, pupil_records) -> None:
    session = ada.use("pupil-records")
    logout(ada, id_token_hint=id_token_for("pupil-records", session))
    rows = db.session.scalars(select(OutboxMessage)).all()
    assert [(r.kind, r.recipient) for r in rows] == [
        (OutboxKind.BACKCHANNEL_LOGOUT, "pupil-records")
    ]


# -- L02: forged hints -----------------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@functools.cache
def _attacker_keys() -> tuple[RSAKey, ECKey]:
    return RSAKey.generate_key(2048, private=True), ECKey.generate_key("P-256", private=True)


def _forged_hints(session) -> dict[str, str]:
    import hashlib
    import hmac

    from idp.oidc.keys import get_keyring

    genuine = id_token_for("pupil-records", session)
    token = jwt.decode(genuine, get_keyring_keys())
    claims, kid = token.claims, token.header["kid"]
    public_pem = get_keyring().verification_keys(["RS256"]).key_set.keys[0].as_pem(private=False)
    hs_header = _b64({"alg": "HS256", "kid": kid, "typ": "JWT"})
    hs_payload = _b64(claims)
    signature = hmac.new(public_pem, f"{hs_header}.{hs_payload}".encode(), hashlib.sha256)
    hs256 = (
        f"{hs_header}.{hs_payload}."
        + base64.urlsafe_b64encode(signature.digest()).rstrip(b"=").decode()
    )
    attacker, es = _attacker_keys()
    embedded = jwt.encode(
        {"alg": "RS256", "typ": "JWT", "jwk": attacker.as_dict(private=False)}, claims, attacker
    )
    jku = jwt.encode(
        {"alg": "RS256", "typ": "JWT", "jku": "https://attacker.example/jwks"}, claims, attacker
    )
    es256 = jwt.encode({"alg": "ES256", "kid": kid, "typ": "JWT"}, claims, es)
    wrong_iss = id_token_for("pupil-records", session, iss="https://attacker.example")
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "HS256 keyed with our public key": hs256,
        "attacker jwk in the header": embedded,
        "attacker jku in the header": jku,
        "ES256 by another key": es256,
        "another issuer": wrong_iss,
        "garbage": "not.a.jwt",
        "empty segments": "..",
        "unicode": "é.é.é",
        "huge": "a" * 9000,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "alg none",
        "HS256 keyed with our public key",
        "attacker jwk in the header",
        "attacker jku in the header",
        "ES256 by another key",
        "another issuer",
        "garbage",
        "empty segments",
        "unicode",
        "huge",
    ],
)
def test_l02_forged_hints_are_never_trusted(ada: Browser, pupil_records, kind: str) -> None:
    session = ada.use("pupil-records")
    hint = _forged_hints(session)[kind]
    checked = validate_logout_request(
        {"id_token_hint": hint, "post_logout_redirect_uri": SIGNED_OUT_URI}
    )
    assert checked.hint is None
    assert checked.redirect_uri is None
    assert checked.problems


def test_a_hint_signed_with_another_of_our_algorithms_than_registered_is_refused(
    ada: Browser, pupil_records
) -> None:
    """The hint's alg must be the one the service's ID Tokens use (pupil-records: RS256)."""
    session = ada.use("pupil-records")
    es_hint = id_token_for("pupil-records", session, alg="ES256")
    assert validate_logout_request({"id_token_hint": es_hint}).hint is None


def test_an_es256_service_hint_is_accepted(ada: Browser, relying_service) -> None:
    from tests.logout.conftest import register

    register("es-service", post_logout=("https://es-service.example/bye",), alg="ES256")
    session = ada.use("es-service")
    response = logout(
        ada,
        id_token_hint=id_token_for("es-service", session, alg="ES256"),
        post_logout_redirect_uri="https://es-service.example/bye",
    )
    assert response.headers["Location"] == "https://es-service.example/bye"


def test_l02_oversized_requests_are_refused_before_parsing(ada: Browser) -> None:
    cookie = ada.cookie
    response = ada.client.post("/logout", data={"id_token_hint": "a" * 20_000})
    assert response.status_code == 413
    assert_still_signed_in(ada, cookie)


def test_e08_logout_pages_cannot_be_framed(ada: Browser) -> None:
    response = logout(ada)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("uri", "state", "expected"),
    [
        ("https://a.example/bye", "", "https://a.example/bye"),
        ("https://a.example/bye", "x y&z", "https://a.example/bye?state=x+y%26z"),
        ("https://a.example/bye?k=v", "s", "https://a.example/bye?k=v&state=s"),
    ],
)
def test_state_is_added_to_the_registered_uri(uri: str, state: str, expected: str) -> None:
    assert with_state(uri, state) == expected


def test_an_id_token_from_the_token_endpoint_is_a_valid_hint(ada: Browser, pupil_records) -> None:
    """The hint rules accept the ID Tokens the provider really issues (idp.oidc.tokens)."""
    tokens = pytest.importorskip("idp.oidc.tokens")
    if not hasattr(tokens, "make_id_token"):
        pytest.skip("idp.oidc.tokens.make_id_token is not there yet")
    session = ada.use("pupil-records")
    id_token = tokens.make_id_token(
        pupil_records,
        ada.user,
        scopes=["openid"],
        authn=tokens.Authentication(sid=session.sid, auth_time=session.auth_time),
        access_token=None,
    )
    response = logout(ada, id_token_hint=id_token, post_logout_redirect_uri=SIGNED_OUT_URI)
    assert response.status_code == 303
    assert response.headers["Location"] == SIGNED_OUT_URI
