"""A minimal relying party for tests: it drives the real provider through the Flask test client.

It does what a strict certified RP library does, and no more: PKCE (S256), ``state`` and
``nonce`` from ``secrets``, the authorization request (GET or POST), the browser's sign-in
journey, the callback (``state`` and RFC 9207 ``iss`` checked), the token request with the
client's authentication method, and ID token validation per OIDC Core §3.1.3.7 with joserfc
against the provider's published JWKS (kid required, algorithm allow-list, iss, aud, exp,
iat, nonce, at_hash, auth_time when max_age was sent). It is not a mock of the provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from werkzeug.test import TestResponse

from idp.oidc.keys import jws_registry
from idp.services.clients import register_service
from idp.services.transaction import transaction
from tests.factories import DEFAULT_PASSWORD, SignIn, csrf_token, page_text

ISSUER = "http://localhost"  # the test settings' public_base_url
REDIRECT_URI = "https://portal.school.example/callback"
ID_TOKEN_ALGS = ("RS256", "ES256", "EdDSA")
#: What the consent page asks (idp.oidc.consent), for services that are not first-party.
CONSENT_QUESTION = "to use your Secure Access account?"


def epoch() -> int:
    """Now, in whole seconds (time-machine moves it)."""
    return int(datetime.now(UTC).timestamp())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return b64url(digest[: len(digest) // 2])


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, unchecked (to look at what a token says)."""
    header, payload = (
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        for part in token.split(".")[:2]
    )
    return header, payload


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class AuthRequest:
    """One login attempt's secrets, kept by the RP (never shared with the provider)."""

    params: dict[str, str]
    verifier: str

    @property
    def state(self) -> str:
        return self.params.get("state", "")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")


@dataclass
class Callback:
    """What came back to the redirect URI."""

    response: TestResponse
    uri: str
    params: dict[str, str]

    @property
    def code(self) -> str:
        return self.params["code"]


@dataclass
class RP:
    client: FlaskClient
    client_id: str
    secret: str | None
    redirect_uri: str = REDIRECT_URI
    auth_method: str = "client_secret_basic"
    private_key: ECKey | None = None
    issuer: str = ISSUER
    last: AuthRequest | None = field(default=None, repr=False)

    # -- registration ---------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        client: FlaskClient,
        *,
        client_id: str = "school-portal",
        redirect_uris: Sequence[str] = (REDIRECT_URI,),
        scopes: Sequence[str] = ("openid", "profile", "email", "offline_access"),
        grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
        auth_method: str = "client_secret_basic",
        **options: Any,
    ) -> RP:
        private_key = None
        if auth_method == "private_key_jwt":
            private_key = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, private=True)
            private_key.ensure_kid()
            options["jwks"] = {"keys": [private_key.as_dict(private=False)]}
        # Access is not the point of most protocol tests: anyone may use the service unless a
        # test asks for access_policy="granted" (tests/oidc/test_choose_organisation_and_access).
        options.setdefault("access_policy", "open")
        with transaction():
            _, secret = register_service(
                client_id,
                f"Service {client_id}",
                redirect_uris=redirect_uris,
                allowed_scopes=scopes,
                grant_types=grant_types,
                token_endpoint_auth_method=auth_method,
                **options,
            )
        return cls(
            client,
            client_id,
            secret,
            redirect_uri=redirect_uris[0] if redirect_uris else REDIRECT_URI,
            auth_method=auth_method,
            private_key=private_key,
        )

    # -- the authorization request ----------------------------------------------------------

    def new_request(self, **params: str | None) -> AuthRequest:
        """A fresh request; pass a parameter as None to leave it out."""
        verifier = secrets.token_urlsafe(48)
        values: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile email",
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        values.update(params)
        request = AuthRequest({k: v for k, v in values.items() if v is not None}, verifier)
        self.last = request
        return request

    def send(self, request: AuthRequest, *, method: str = "GET") -> TestResponse:
        if method == "POST":
            return self.client.post("/authorize", data=request.params)
        return self.client.get("/authorize?" + urlencode(request.params))

    def authorize(self, *, method: str = "GET", **params: str | None) -> TestResponse:
        return self.send(self.new_request(**params), method=method)

    def follow(self, response: TestResponse, *, limit: int = 10) -> TestResponse:
        """Follow the provider's own redirects; stop at the RP or at a page."""
        for _ in range(limit):
            location = response.headers.get("Location")
            if response.status_code not in (302, 303) or location is None:
                return response
            if not location.startswith("/"):
                return response
            response = self.client.get(location)
        raise AssertionError("too many redirects")

    def callback(self, response: TestResponse) -> Callback:
        assert response.status_code in (302, 303), (response.status_code, page_text(response))
        location = response.headers["Location"]
        _base, _, query = location.partition("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        return Callback(response, location, params)

    def callback_from(self, url: str) -> Callback:
        """A callback URL the browser landed on (browser tests)."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        return Callback(None, url, params)  # type: ignore[arg-type]

    def login(
        self,
        email: str | None = None,
        *,
        password: str = DEFAULT_PASSWORD,
        method: str = "GET",
        request: AuthRequest | None = None,
        organisation: str | None = None,
        consent: str | None = None,
        **params: str | None,
    ) -> Callback:
        """The whole browser journey: authorize, sign in when asked, land on the callback.

        The callback's ``state`` and ``iss`` are checked, as a careful RP does (J01, J02).
        """
        if request is None:
            request = self.new_request(**params)
        self.last = request
        response = self.follow(self.send(request, method=method))
        if response.status_code == 200 and "Sign in" in page_text(response):
            assert email is not None, "the provider asked for a sign-in"
            response = self.follow(SignIn(self.client).with_password(email, password))
        if response.status_code == 200 and "Which organisation" in page_text(response):
            assert organisation is not None, "the provider asked which organisation"
            response = self.follow(self.choose_organisation(response, organisation))
        if response.status_code == 200 and CONSENT_QUESTION in page_text(response):
            assert consent is not None, "the provider asked for consent"
            response = self.follow(self.answer_consent(response, consent))
        result = self.callback(response)
        assert result.uri.startswith(self.redirect_uri), result.uri
        assert result.params.get("state") == request.params.get("state")
        assert result.params.get("iss") == self.issuer
        return result

    def choose_organisation(self, page: TestResponse, public_id: str) -> TestResponse:
        """Answer the choose-organisation page (issue 7) with the organisation ``public_id``."""
        path = urlsplit(page.request.url).path
        return self.client.post(
            path, data={"organisation": public_id, "csrf_token": csrf_token(page)}
        )

    def answer_consent(self, page: TestResponse, decision: str) -> TestResponse:
        """Press "Allow" (``allow``) or "Do not allow" (``refuse``) on the consent page (F11)."""
        path = urlsplit(page.request.url).path
        return self.client.post(path, data={"decision": decision, "csrf_token": csrf_token(page)})

    # -- the token endpoint -----------------------------------------------------------------

    def client_auth(self, data: dict[str, str]) -> dict[str, str]:
        """Headers for this client's method; adds to ``data`` for the body-based ones."""
        if self.auth_method == "client_secret_post":
            data.update(client_id=self.client_id, client_secret=self.secret or "")
            return {}
        if self.auth_method == "private_key_jwt":
            data.update(
                client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                client_assertion=self.assertion(),
            )
            return {}
        return basic(self.client_id, self.secret or "")

    def assertion(self, **overrides: Any) -> str:
        assert self.private_key is not None
        now = epoch()
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer + "/token",
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        header = {"alg": "ES256", "kid": self.private_key.kid}
        return jwt.encode(header, claims, self.private_key, algorithms=["ES256"])

    def post(self, path: str, data: dict[str, str], **kwargs: Any) -> TestResponse:
        headers = self.client_auth(data)
        headers.update(kwargs.pop("headers", {}))
        return self.client.post(path, data=data, headers=headers, **kwargs)

    def redeem(
        self, code: str, verifier: str | None = None, *, redirect_uri: str | None = ""
    ) -> TestResponse:
        data = {"grant_type": "authorization_code", "code": code}
        if verifier is None and self.last is not None:
            verifier = self.last.verifier
        if verifier:
            data["code_verifier"] = verifier
        if redirect_uri == "":
            redirect_uri = self.redirect_uri
        if redirect_uri is not None:
            data["redirect_uri"] = redirect_uri
        return self.post("/token", data)

    def refresh(self, refresh_token: str, **extra: str) -> TestResponse:
        return self.post(
            "/token", {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
        )

    def tokens(self, callback: Callback) -> dict[str, Any]:
        response = self.redeem(callback.code)
        assert response.status_code == 200, response.get_json()
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"
        body: dict[str, Any] = response.get_json()
        return body

    # -- validating what came back ---------------------------------------------------------

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(self.client.get("/.well-known/jwks.json").get_json())

    def validate_id_token(
        self,
        id_token: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
        max_age: int | None = None,
        algorithms: Sequence[str] = ID_TOKEN_ALGS,
    ) -> dict[str, Any]:
        """OIDC Core §3.1.3.7, step by step, with joserfc and the published JWKS."""
        decoded = jwt.decode(
            id_token,
            self.jwks(),
            algorithms=list(algorithms),
            registry=jws_registry(algorithms),
        )
        header, claims = decoded.header, dict(decoded.claims)
        now = epoch()
        assert header.get("kid"), "EnsureIdTokenContainsKid"
        assert claims["iss"] == self.issuer
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        assert self.client_id in audience
        if len(audience) > 1:
            assert claims.get("azp") == self.client_id
        assert isinstance(claims["sub"], str)
        assert 0 < len(claims["sub"]) <= 255
        assert claims["exp"] > now
        assert claims["iat"] <= now + 60
        assert claims.get("nonce") == nonce
        if access_token is not None:
            assert claims["at_hash"] == half_hash(access_token, header["alg"]), "ValidateAtHash"
        if max_age is not None:
            assert isinstance(claims.get("auth_time"), int)
        return claims

    def userinfo(
        self, access_token: str, *, method: str = "GET", in_body: bool = False
    ) -> TestResponse:
        if in_body:
            return self.client.post("/userinfo", data={"access_token": access_token})
        headers = {"Authorization": f"Bearer {access_token}"}
        if method == "POST":
            return self.client.post("/userinfo", headers=headers)
        return self.client.get("/userinfo", headers=headers)


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def assert_error_page(response: TestResponse) -> None:
    """Our own error page: 400, HTML, and no redirect anywhere (F01, V1, V2)."""
    assert response.status_code == 400, response.status_code
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert "There is a problem with the link to sign in" in page_text(response)


def error_redirect(response: TestResponse, redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    """An error sent back to the (validated) redirect URI, with ``iss`` (F10)."""
    assert response.status_code in (302, 303), (response.status_code, page_text(response))
    location = response.headers["Location"]
    assert location.startswith(redirect_uri + "?"), location
    params = {k: v[0] for k, v in query_of(location).items()}
    assert params["iss"] == ISSUER
    assert "error" in params
    assert not any(c in params.get("error_description", "") for c in "\r\n\t")
    return params
