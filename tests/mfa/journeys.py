"""Domain helpers for MFA tests: give someone a factor, and drive the sign-in steps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyotp
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import TotpCredential, User, WebAuthnCredential
from idp.models.base import utcnow
from idp.services.mfa import recovery, totp
from idp.services.transaction import transaction
from tests.factories import DEFAULT_PASSWORD, SignIn, csrf_token
from tests.mfa.softkey import SoftKey


def add_totp(user: User) -> str:
    """Give ``user`` a confirmed authenticator app; return its secret (to compute codes)."""
    secret = totp.new_secret()
    db.session.add(
        TotpCredential(
            user_id=user.id,
            secret_ciphertext=totp.encrypt_secret(secret),
            confirmed_at=utcnow(),
        )
    )
    db.session.commit()
    return secret


def add_key(user: User, key: SoftKey, name: str = "Blue key") -> WebAuthnCredential:
    """Give ``user`` a registered security key backed by the software authenticator ``key``."""
    credential = WebAuthnCredential(
        user_id=user.id,
        credential_id=key.credential_id,
        public_key=key.cose_public_key(),
        sign_count=key.sign_count,
        transports=["usb"],
        name=name,
    )
    db.session.add(credential)
    db.session.commit()
    return credential


def issue_codes(user: User) -> list[str]:
    with transaction():
        return recovery.issue(user, actor="test", notify=False)


def code_for(secret: str, *, steps: int = 0, at: float | None = None) -> str:
    """The app's code ``steps`` periods from now (or from ``at``), as the server's clock sees it."""
    moment = datetime.now(UTC).timestamp() if at is None else at
    return pyotp.TOTP(secret).generate_otp(int(moment // totp.PERIOD) + steps)


class MfaSignIn:
    """Drive sign-in through the MFA steps with the test client, one step per call."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def password(self, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
        response = SignIn(self.client).with_password(email, password)
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        return response

    def post_form(self, path: str, data: dict[str, str]) -> TestResponse:
        page = self.client.get(path)
        assert page.status_code == 200, (path, page.status_code, page.headers.get("Location"))
        return self.client.post(path, data={**data, "csrf_token": csrf_token(page)})

    def totp(self, code: str) -> TestResponse:
        return self.post_form("/sign-in/mfa/app", {"code": code})

    def recovery_code(self, code: str) -> TestResponse:
        return self.post_form("/sign-in/mfa/recovery-code", {"code": code})

    def json(self, path: str, token: str, body: dict[str, Any]) -> TestResponse:
        return self.client.post(path, json=body, headers={"X-CSRFToken": token})

    def key(self, key: SoftKey, **tamper: Any) -> TestResponse:
        """The WebAuthn ceremony at the MFA step, as webauthn.js performs it."""
        page = self.client.get("/sign-in/mfa/security-key")
        assert page.status_code == 200, page.headers.get("Location")
        token = csrf_token(page)
        options = self.json("/sign-in/mfa/security-key/options", token, {})
        assert options.status_code == 200, options.get_data(as_text=True)[:300]
        assertion = key.get(options.get_json(), **tamper)
        return self.json("/sign-in/mfa/security-key/verify", token, {"credential": assertion})

    def register_key(
        self, key: SoftKey, name: str = "Blue key", prefix: str = "/sign-in/set-up/security-key"
    ) -> TestResponse:
        """The WebAuthn registration ceremony (sign-in set-up, or the account page's)."""
        page = self.client.get(prefix)
        assert page.status_code == 200, page.headers.get("Location")
        token = csrf_token(page)
        options = self.json(f"{prefix}/options", token, {"name": name})
        assert options.status_code == 200, options.get_data(as_text=True)[:300]
        created = key.create(options.get_json())
        return self.json(f"{prefix}/verify", token, {"name": name, "credential": created})

    def finish(self) -> TestResponse:
        return self.client.get("/sign-in/finish")


def begin(
    client: FlaskClient,
    *,
    client_id: str | None = None,
    require_mfa: bool = False,
    return_to: str | None = None,
) -> None:
    """What the OIDC /authorize endpoint does before sign-in, in this browser: start a pending
    sign-in for a service, and mark it as demanding MFA when ``acr_values`` ask for it."""
    from idp.auth import flow

    with client.application.test_request_context():
        pending = flow.start(client_id=client_id, return_to=return_to)
        if require_mfa:
            pending.data["require_mfa"] = True
            flow.save(pending)
    with client.session_transaction() as session:
        session["signin"] = pending.id


def begin_step_up(
    client: FlaskClient,
    sub: str,
    amr: list[str],
    *,
    require_mfa: bool = True,
    return_to: str = "/account",
) -> None:
    """What /authorize does for a signed-in person whose session is not strong enough."""
    from idp.auth import flow

    with client.application.test_request_context():
        pending = flow.start_step_up(sub, amr, return_to=return_to, require_mfa=require_mfa)
    with client.session_transaction() as session:
        session["signin"] = pending.id
