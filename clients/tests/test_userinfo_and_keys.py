"""UserInfo (J05; OIDC Core §5.3.2) and the provider's keys (J02 Also).

RP conformance: ``OIDCCClientTestInvalidSubInUserinfoResponse``, ``-userinfo-signed``; the
JWKS is cached, an unknown ``kid`` refetches it once, and no more often than the
rate limit allows.
"""

from __future__ import annotations

from rp_helpers import Journey, make_rp_app, refusal, signed_in


def test_oidcc_client_test_userinfo_invalid_sub_is_refused(browser, op):
    op.userinfo_tamper = lambda claims: claims.update(sub="4f1c1c77-5f43-4a8e-9a9e-1f1f6a1d2b3c")

    response = Journey(browser, op).start().callback()
    assert response.status_code == 400
    assert refusal(response) == "userinfo-invalid-sub"
    assert not signed_in(browser)


def test_userinfo_cannot_change_who_signed_in_or_how(browser, op):
    op.userinfo_tamper = lambda claims: claims.update(
        iss="https://evil.example", acr="urn:secure-access:acr:mfa", amr=["hwk"], sid="other"
    )
    Journey(browser, op).sign_in()

    me = browser.get("/whoami").json
    assert (me["iss"], me["acr"], me["amr"], me["sid"]) == (
        op.issuer,
        "urn:secure-access:acr:pwd",
        ["pwd"],
        "sid-1",
    )


def test_oidcc_client_test_userinfo_signed_is_verified_and_used(browser, op):
    op.userinfo_jwt = True
    Journey(browser, op).sign_in()

    assert browser.get("/whoami").json["email"] == "alex.jones@hilltop-primary.example"


def test_a_signed_userinfo_for_another_service_is_refused(browser, op):
    op.userinfo_jwt = True
    op.userinfo_tamper = lambda claims: None
    original = op.sign

    def sign(claims, header, key=None):
        if "email" in claims:
            claims = {**claims, "aud": "another-service"}
        return original(claims, header, key)

    op.sign = sign
    try:
        response = Journey(browser, op).start().callback()
    finally:
        del op.sign
    assert refusal(response) == "userinfo-invalid-aud"


def test_a_failing_userinfo_endpoint_refuses_the_sign_in(browser, op):
    op.people.clear()
    original = op.issue

    def issue(grant, code):
        response = original(grant, code)
        op.people.clear()  # the access token is unknown to UserInfo
        return response

    op.issue = issue
    try:
        response = Journey(browser, op).start().callback()
    finally:
        del op.issue
    assert refusal(response) == "userinfo-error"


def test_the_jwks_is_fetched_once_and_cached(rp, op):
    for _ in range(3):
        Journey(rp.test_client(), op).sign_in()

    assert op.jwks_fetches == 1


def test_an_unknown_kid_refetches_the_jwks_once_to_pick_up_a_rotation(rp, op, clock):
    Journey(rp.test_client(), op).sign_in()
    clock.advance(31)
    op.published = [op.rsa_other, op.rsa]  # the provider rotated
    op.encode = lambda claims, header: op.sign(claims, header, op.rsa_other)

    browser = rp.test_client()
    Journey(browser, op).sign_in()
    assert signed_in(browser)
    assert op.jwks_fetches == 2


def test_unknown_kids_cannot_make_the_service_hammer_the_jwks(rp, op):
    Journey(rp.test_client(), op).sign_in()
    op.encode = lambda claims, header: op.sign(claims, header, op.rsa_other)

    for _ in range(5):
        assert refusal(Journey(rp.test_client(), op).start().callback()) == "unknown-kid"
    assert op.jwks_fetches == 1  # within the 30 s rate limit: no refetch at all


def test_private_key_jwt_is_used_when_a_private_key_is_configured(op, tmp_path, clock):
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, {"alg": "RS256"}, auto_kid=True)
    app = make_rp_app(op, tmp_path, clock, PRIVATE_KEY=key.as_dict(private=True), CLIENT_SECRET="")
    op.token_answer = (400, {"error": "invalid_client"})
    Journey(app.test_client(), op).start().callback()

    _, form, headers = next(r for r in op.requests if r[0] == "/token")
    assert "Authorization" not in headers
    assert form["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
    from joserfc import jwt

    assertion = jwt.decode(form["client_assertion"][0], key, algorithms=["RS256"])
    assert assertion.claims["iss"] == assertion.claims["sub"] == "rp-under-test"
    assert assertion.claims["aud"] == op.issuer + "/token"
    assert assertion.header["kid"] == key.kid
