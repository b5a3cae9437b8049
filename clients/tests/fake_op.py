"""A scriptable OpenID Provider on loopback, as the RP conformance suite uses one.

It serves real HTTP (discovery, JWKS, token, UserInfo) on 127.0.0.1 and signs real tokens
with joserfc, so the library under test talks to it exactly as it talks to Secure Access. Each
test can make it misbehave the way a broken or attacker-controlled provider would: change a
claim, sign with another key or algorithm, drop ``kid``, send ``alg: none``, answer UserInfo
for someone else... (security-requirements.md §2.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from secure_access_client.tokens import BACKCHANNEL_LOGOUT_EVENT, left_half_hash

CLIENT_ID = "rp-under-test"
CLIENT_SECRET = "insecure-test-client-secret"
ACR_MFA = "urn:secure-access:acr:mfa"
ACR_PWD = "urn:secure-access:acr:pwd"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS built by hand, for tokens no honest library would make."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def hs256_with(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HS256 'signed' with ``secret``: the algorithm-confusion attack uses the RSA public key."""
    signing_input = (
        b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    ).encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return signing_input.decode() + "." + b64(signature)


class Clock:
    """Time for both sides of a test: the RP's checks and the fake's token times."""

    def __init__(self, start: float) -> None:
        self.now = float(int(start))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeOP:
    def __init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.rsa = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, auto_kid=True)
        self.rsa_other = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, auto_kid=True)
        self.ec = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, auto_kid=True)
        self.lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    # -- per-test state -------------------------------------------------------------------------

    def reset(self, clock: Clock) -> None:
        self.clock = clock
        issuer = self.issuer
        self.metadata: dict[str, Any] = {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "userinfo_endpoint": issuer + "/userinfo",
            "jwks_uri": issuer + "/jwks",
            "end_session_endpoint": issuer + "/logout",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "authorization_response_iss_parameter_supported": True,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
        }
        self.published: list[Key] = [self.rsa, self.ec]
        self.codes: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.jwks_fetches = 0
        self.down = False  # answer every request with 503, as an outage would
        #: Change the next ID Tokens' claims and header: ``tamper(claims, header)``.
        self.tamper: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
        #: Replace how ID Tokens are encoded: ``encode(claims, header) -> str``.
        self.encode: Callable[[dict[str, Any], dict[str, Any]], str] | None = None
        #: Override the token endpoint's answer: (status, JSON body).
        self.token_answer: tuple[int, dict[str, Any]] | None = None
        #: Change the UserInfo answer: ``userinfo(claims) -> None`` (mutates).
        self.userinfo_tamper: Callable[[dict[str, Any]], None] | None = None
        self.userinfo_jwt = False
        self.people: dict[str, dict[str, Any]] = {}

    # -- the front channel: what a browser would do at /authorize ----------------------------------

    def authorize(
        self,
        url: str,
        *,
        sub: str = "8d8ac610-566d-4ef0-9c22-186b2a5ed793",
        acr: str = ACR_PWD,
        amr: tuple[str, ...] = ("pwd",),
        roles: tuple[str, ...] = ("submitter",),
        sid: str = "sid-1",
        auth_time: float | None = None,
        iss: str | None = "default",
    ) -> str:
        """Accept an authorization request as if the person signed in; return the callback URL."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert url.startswith(self.metadata["authorization_endpoint"] + "?")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "params": params,
            "sub": sub,
            "acr": acr,
            "amr": list(amr),
            "roles": list(roles),
            "sid": sid,
            "auth_time": int(auth_time if auth_time is not None else self.clock()),
        }
        answer = {"code": code, "state": params["state"]}
        if iss == "default":
            answer["iss"] = self.issuer
        elif iss is not None:
            answer["iss"] = iss
        return params["redirect_uri"] + "?" + urlencode(answer)

    # -- tokens ---------------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], header: dict[str, Any], key: Key | None = None) -> str:
        key = key or (self.ec if header.get("alg") == "ES256" else self.rsa)
        header = {"kid": key.kid, **header}
        if header.get("kid") is None:
            del header["kid"]
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])

    def id_token(self, grant: dict[str, Any], access_token: str, code: str | None) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant["sub"],
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "auth_time": grant["auth_time"],
            "sid": grant["sid"],
            "acr": grant["acr"],
            "amr": grant["amr"],
            "at_hash": left_half_hash(access_token, "RS256"),
        }
        if grant.get("nonce") is not None:
            claims["nonce"] = grant["nonce"]
        header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
        if self.tamper is not None:
            self.tamper(claims, header)
        if self.encode is not None:
            return self.encode(claims, header)
        return self.sign(claims, header)

    def logout_token(self, **overrides: Any) -> str:
        """A valid Logout Token for the default person; ``header__x`` keys change the header."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
            "sub": "8d8ac610-566d-4ef0-9c22-186b2a5ed793",
            "sid": "sid-1",
        }
        header: dict[str, Any] = {"alg": "RS256", "typ": "logout+jwt"}
        for name, value in overrides.items():
            target, key = (header, name[8:]) if name.startswith("header__") else (claims, name)
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        return self.sign(claims, header)

    # -- the HTTP side ----------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.requests.append(
                (request.path, request.form.to_dict(flat=False), dict(request.headers))
            )
        response = self.route(request)
        return response(environ, start_response)

    def json(self, body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    def route(self, request: Request) -> Response:
        if self.down:
            return Response("down", status=503)
        if request.path == "/.well-known/openid-configuration":
            return self.json(self.metadata)
        if request.path == "/jwks":
            self.jwks_fetches += 1
            return self.json({"keys": [k.as_dict(private=False) for k in self.published]})
        if request.path == "/token":
            return self.token(request)
        if request.path == "/userinfo":
            return self.userinfo(request)
        return Response("not found", status=404)

    def token(self, request: Request) -> Response:
        if self.token_answer is not None:
            return self.json(self.token_answer[1], self.token_answer[0])
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if not hmac.compare_digest(auth, expected):
            return self.json({"error": "invalid_client"}, 401)
        form = request.form
        if form.get("grant_type") == "refresh_token":
            grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if grant is None:
                return self.json({"error": "invalid_grant"}, 400)
            return self.issue(grant, code=None)
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            return self.json({"error": "invalid_grant"}, 400)
        params = grant["params"]
        verifier = form.get("code_verifier", "")
        challenge = b64(hashlib.sha256(verifier.encode()).digest())
        if params.get("code_challenge_method") != "S256" or challenge != params.get(
            "code_challenge"
        ):
            return self.json({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        if form.get("redirect_uri") != params.get("redirect_uri"):
            return self.json({"error": "invalid_grant"}, 400)
        grant["nonce"] = params.get("nonce")
        grant["scope"] = params.get("scope")
        return self.issue(grant, code=form["code"])

    def issue(self, grant: dict[str, Any], code: str | None) -> Response:
        access_token = secrets.token_urlsafe(24)
        refresh_token = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh_token] = {**grant, "nonce": None}
        self.people[access_token] = grant
        return self.json(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": refresh_token,
                "id_token": self.id_token(grant, access_token, code),
                "scope": grant.get("scope", "openid"),
            }
        )

    def userinfo(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        grant = self.people.get(token)
        if grant is None:
            return self.json({"error": "invalid_token"}, 401)
        claims: dict[str, Any] = {
            "sub": grant["sub"],
            "name": "Alex Jones",
            "given_name": "Alex",
            "family_name": "Jones",
            "email": "alex.jones@hilltop-primary.example",
            "email_verified": True,
            "organisation": {
                "id": "0b7d6f7e-6a43-4c37-9a8e-5d1a9b0b2f11",
                "name": "Hill Top Primary School",
                "type": "establishment",
                "urn": "100000",
            },
            "roles": grant["roles"],
        }
        if self.userinfo_tamper is not None:
            self.userinfo_tamper(claims)
        if self.userinfo_jwt:
            body = self.sign(
                {**claims, "iss": self.issuer, "aud": CLIENT_ID}, {"alg": "RS256", "typ": "JWT"}
            )
            return Response(body, content_type="application/jwt")
        return self.json(claims)
