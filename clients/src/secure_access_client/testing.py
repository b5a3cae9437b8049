"""Test helpers for a service's own test suite: sign in a fake person without a live provider,
and send the service a valid back-channel Logout Token.

::

    from secure_access_client.testing import FakeProvider

    def test_approvers_see_the_approve_page(app):
        fake = FakeProvider().install(app)          # no network, no Secure Access
        client = app.test_client()
        fake.sign_in(client, roles=["approver"], organisation={"name": "Hill Top Primary"})
        assert client.get("/approve").status_code == 200
        fake.send_backchannel_logout(client)        # a real, signed Logout Token
        assert client.get("/approve").status_code == 302

With pytest, ``pytest_plugins = ["secure_access_client.pytest_plugin"]`` in ``conftest.py``
gives a ``secure_access`` fixture: a :class:`FakeProvider` installed on your ``app`` fixture.

:class:`FakeProvider` holds its own signing key and publishes it to the service in memory (the
service's HTTP client is never used), so Logout Tokens it signs go through the service's full
validation (J06), exactly as in production. Sessions made by :meth:`FakeProvider.sign_in` are
written straight into the service's session store: they skip the code flow, which the
library's own tests cover. Never install a FakeProvider outside tests.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from secure_access_client.provider import StaticProvider
from secure_access_client.relying_party import RelyingParty
from secure_access_client.settings import ACR_MFA
from secure_access_client.tokens import BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYPE
from secure_access_client.user import User

ACR_PASSWORD = "urn:secure-access:acr:pwd"  # noqa: S105 (an acr value, not a secret)


def relying_party_of(target: Any) -> RelyingParty:
    """The :class:`RelyingParty` behind a Flask app, a middleware or the engine itself."""
    if isinstance(target, RelyingParty):
        return target
    engine = getattr(target, "relying_party", None)
    if isinstance(engine, RelyingParty):
        return engine
    extensions = getattr(target, "extensions", None)
    if isinstance(extensions, Mapping) and "secure_access" in extensions:
        rp = extensions["secure_access"][1]
        if isinstance(rp, RelyingParty):
            return rp
    raise TypeError(
        "expected a Flask app with SecureAccess, a SecureAccessMiddleware or a RelyingParty"
    )


def _set_cookie(client: Any, name: str, value: str) -> None:
    try:
        client.set_cookie(name, value)  # Werkzeug >= 2.3 (Flask's test client)
    except TypeError:  # pragma: no cover - older Werkzeug: set_cookie(server_name, key, value)
        client.set_cookie("localhost", name, value)


class FakeProvider:
    """An in-memory Secure Access for tests. Its issuer is the service's configured one."""

    def __init__(self, *, alg: str = "RS256") -> None:
        self.alg = alg
        params: Any = {"alg": alg, "use": "sig"}
        self.key: Key = (
            ECKey.generate_key("P-256", params, private=True, auto_kid=True)
            if alg == "ES256"
            else RSAKey.generate_key(2048, params, private=True, auto_kid=True)
        )
        self._rp: RelyingParty | None = None

    # -- wiring ------------------------------------------------------------------------------

    def install(self, target: Any) -> FakeProvider:
        """Make ``target`` (a Flask app, middleware or engine) trust this fake and no network."""
        rp = relying_party_of(target)
        self._rp = rp
        rp.use_provider(StaticProvider(self.metadata(), self.jwks()))
        return self

    @property
    def relying_party(self) -> RelyingParty:
        if self._rp is None:
            raise RuntimeError("call FakeProvider().install(app) first")
        return self._rp

    @property
    def issuer(self) -> str:
        return self.relying_party.settings.issuer

    @property
    def client_id(self) -> str:
        return self.relying_party.settings.client_id

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def metadata(self) -> dict[str, Any]:
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "userinfo_endpoint": issuer + "/userinfo",
            "jwks_uri": issuer + "/.well-known/jwks.json",
            "end_session_endpoint": issuer + "/logout",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": [self.alg],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
        }

    # -- tokens ------------------------------------------------------------------------------

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        typ: str = "JWT",
        header: Mapping[str, Any] | None = None,
    ) -> str:
        """A JWT signed with this fake's key (kid set), with any extra header members."""
        protected = {**(header or {}), "alg": self.alg, "kid": self.key.kid, "typ": typ}
        return jwt.encode(protected, dict(claims), self.key, algorithms=[self.alg])

    def logout_token(
        self, *, sub: str | None = None, sid: str | None = None, **overrides: Any
    ) -> str:
        """A valid Logout Token (Back-Channel Logout 1.0 §2.4) for ``sub`` and/or ``sid``."""
        now = int(self.relying_party.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        if sub is not None:
            claims["sub"] = sub
        if sid is not None:
            claims["sid"] = sid
        claims.update(overrides)
        return self.sign(claims, typ=LOGOUT_TOKEN_TYPE)

    # -- people ------------------------------------------------------------------------------

    def user_claims(
        self,
        *,
        sub: str | None = None,
        given_name: str = "Test",
        family_name: str = "User",
        email: str | None = None,
        roles: Sequence[str] = (),
        organisation: Mapping[str, Any] | str | None = None,
        mfa: bool = False,
        sid: str | None = None,
        **claims: Any,
    ) -> dict[str, Any]:
        """The claims a real sign-in would give, with anything chosen overridden."""
        sub = sub or str(uuid.uuid4())
        org: Any = organisation
        if organisation is None:
            org = {
                "id": "00000000-0000-4000-8000-000000000001",
                "name": "Test School",
                "type": "establishment",
                "urn": "100000",
            }
        elif isinstance(organisation, Mapping):
            org = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, str(organisation.get("name")))),
                **organisation,
            }
        values: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "sid": sid or secrets.token_urlsafe(16),
            "auth_time": int(self.relying_party.clock()),
            "acr": ACR_MFA if mfa else ACR_PASSWORD,
            "amr": ["pwd", "otp"] if mfa else ["pwd"],
            "given_name": given_name,
            "family_name": family_name,
            "name": f"{given_name} {family_name}",
            "email": email or f"{given_name}.{family_name}@school.invalid".lower(),
            "email_verified": True,
            "organisation": org,
            "roles": list(roles),
        }
        values.update(claims)
        return values

    def sign_in_cookie(self, **claims: Any) -> tuple[str, str, User]:
        """Sign a fake person in; return the cookie name and value to send, and the user."""
        values = self.user_claims(**claims)
        rp = self.relying_party
        cookie = rp.sign_in_with_claims(values)
        return rp.settings.session_cookie_name, cookie, User.from_claims(values)

    def sign_in(self, client: Any, **claims: Any) -> User:
        """Sign a fake person in on a Flask/Werkzeug test ``client``; return who it is.

        Keyword arguments choose claims: ``sub``, ``given_name``, ``family_name``, ``email``,
        ``roles=[...]``, ``organisation={...}``, ``mfa=True``, ``sid``, or any other claim.
        """
        name, value, user = self.sign_in_cookie(**claims)
        _set_cookie(client, name, value)
        return user

    def send_backchannel_logout(
        self,
        client: Any,
        user: User | None = None,
        *,
        sub: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Any:
        """POST a valid Logout Token to the service, as Secure Access's worker would."""
        if token is None:
            if user is not None:
                sub, sid = sub or user.sub, sid or user.sid
            token = self.logout_token(sub=sub, sid=sid)
        return client.post(
            self.relying_party.settings.backchannel_logout_path, data={"logout_token": token}
        )
