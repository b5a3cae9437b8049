"""Authenticator apps: time-based one-time passwords (RFC 6238) with pyotp.

Checklist items (``../shared/reference/security-requirements.md`` §D) and how they are met:

- **D01** the secret is ``pyotp.random_base32(32)``: 32 base32 characters, 160 bits from the
  ``secrets`` CSPRNG. It is stored encrypted (AES-256-GCM, :func:`idp.services.crypto.encrypt`,
  context ``"totp"``) under the key-encryption keys from the environment, never in the DB in
  clear, and it is shown only on the enrolment page (QR code and text) until confirmed.
- **D02** a new credential is stored unconfirmed and counts for nothing until a valid code from
  it is entered (:func:`confirm_enrolment`). Reauthentication is the views' job (E05).
- **D03** period 30 s, 6 digits, SHA-1 (what every app supports), ``valid_window`` 1: codes of
  the previous, current and next step of the *server* clock are accepted, no others. Each
  step is accepted once per person: the last accepted step lives in the store
  (``mfa:totp:last:<sub>``) and a Lua script accepts a step only if it is greater, atomically,
  so a code cannot be replayed, even by two requests at the same moment, and a code older
  than one already used is refused too. The confirmation code uses the same record.
- **D04 / B01** every check goes through the shared :class:`~idp.services.throttle.Throttle`
  with kind ``"totp"``: its own counter, separate from the password's; a password success does
  not reset it, and a TOTP success resets only it. Refused before the code is evaluated.
- **K03** codes and secrets are never logged or audited.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import pyotp
import segno
from sqlalchemy import delete

from idp.extensions import db
from idp.models import TotpCredential, User
from idp.models.base import utcnow
from idp.services import audit, crypto
from idp.services.mfa import attempts, factors
from idp.services.mfa.common import DEFAULT_CLOCK, Clock, CodeRejected, CodeReused, Method
from idp.services.throttle import Throttle
from idp.store import Store

PERIOD: Final = 30
DIGITS: Final = 6
VALID_WINDOW: Final = 1  # D03: at most ±1 step
SECRET_CHARS: Final = 32  # 32 base32 characters = 160 bits (D01)
CONTEXT: Final = "totp"
ISSUER: Final = "Secure Access"
LAST_STEP_PREFIX: Final = "mfa:totp:last:"
#: Long enough to outlive every step the window can still accept; only collects garbage.
LAST_STEP_TTL_SECONDS: Final = PERIOD * (2 * VALID_WINDOW + 4)
#: An unconfirmed enrolment is reused (so a page refresh keeps the QR code) for this long.
ENROLMENT_REUSE = timedelta(minutes=30)

_NOT_DIGITS = re.compile(r"[\s-]")

# KEYS: the person's last-step key. ARGV: step, ttl. 1: accepted (and recorded); 0: replay.
_CLAIM_STEP = """
local last = tonumber(redis.call("GET", KEYS[1]) or "-1")
local step = tonumber(ARGV[1])
if step <= last then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[2])
return 1
"""


def new_secret() -> str:
    """A fresh base32 secret of 160 bits from the CSPRNG (pyotp uses ``secrets``)."""
    return pyotp.random_base32(SECRET_CHARS)


def normalise_code(code: str) -> str:
    """What people type: "123 456" or "123-456" are "123456"."""
    return _NOT_DIGITS.sub("", code or "")


def provisioning_uri(secret: str, account_name: str) -> str:
    """The ``otpauth://`` URI the QR code carries (Key Uri Format: issuer, period, digits)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account_name, issuer_name=ISSUER
    )


def qr_code_data_uri(uri: str) -> str:
    """The QR code as an SVG ``data:`` URI, made on the server (the CSP allows ``img-src data:``
    and forbids inline scripts, so nothing is drawn in the browser)."""
    data_uri: str = segno.make(uri, error="m").svg_data_uri(scale=5, border=4)
    return data_uri


def grouped(secret: str) -> str:
    """The key for typing in by hand, in groups of four: ``ABCD EFGH …``."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def encrypt_secret(secret: str) -> str:
    return crypto.encrypt(secret.encode(), context=CONTEXT)


def secret_of(credential: TotpCredential) -> str:
    return crypto.decrypt(credential.secret_ciphertext, context=CONTEXT).decode()


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time-step (within ±``VALID_WINDOW`` of ``now``) whose code is ``code``, or None.

    Every candidate is compared in constant time, and all of them are always compared.
    """
    code = normalise_code(code)
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(now // PERIOD)
    found: int | None = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


@dataclass(frozen=True)
class Enrolment:
    """An enrolment in progress: the unconfirmed credential and its secret, for display."""

    credential: TotpCredential
    secret: str

    def uri(self, account_name: str) -> str:
        return provisioning_uri(self.secret, account_name)


class TotpVerifier:
    """Checks codes against a person's apps: throttled (D04), each step once (D03)."""

    def __init__(self, store: Store, throttle: Throttle, *, clock: Clock = DEFAULT_CLOCK) -> None:
        self.store = store
        self.throttle = throttle
        self.clock = clock
        self._claim = store.register_script(_CLAIM_STEP)

    def claim_step(self, sub: str, step: int) -> bool:
        """Record ``step`` as used by ``sub``; False if it, or a later one, was used before."""
        return bool(self._claim(keys=[LAST_STEP_PREFIX + sub], args=[step, LAST_STEP_TTL_SECONDS]))

    def verify(self, user: User, code: str, credentials: list[TotpCredential]) -> TotpCredential:
        """The credential ``code`` came from, or raise :class:`CodeRejected` / throttled."""
        key = attempts.check(self.throttle, user, Method.TOTP)
        now = self.clock()
        reused = False
        for credential in credentials:
            step = matching_step(secret_of(credential), code, now)
            if step is None:
                continue
            if self.claim_step(user.sub, step):
                attempts.succeeded(self.throttle, key, Method.TOTP)
                credential.last_used_at = utcnow()
                return credential
            reused = True
        attempts.failed(self.throttle, user, key, Method.TOTP)
        if reused:
            raise CodeReused("Wait for your app to show a new code, then enter that code")
        raise CodeRejected("The code is not right")


# -- enrolment ---------------------------------------------------------------------------


def start_enrolment(user: User) -> Enrolment:
    """The person's enrolment in progress, or a new one with a fresh secret (D01).

    A recent unconfirmed credential is reused so that reloading the page shows the same QR
    code; older ones are deleted. Nothing here counts as a factor until confirmed (D02).
    """
    now = utcnow()
    for pending in factors.totp_credentials(user, confirmed=False):
        if now - pending.created_at < ENROLMENT_REUSE:
            return Enrolment(pending, secret_of(pending))
        db.session.delete(pending)
    secret = new_secret()
    credential = TotpCredential(
        user_id=user.id, name="Authenticator app", secret_ciphertext=encrypt_secret(secret)
    )
    db.session.add(credential)
    db.session.flush()
    return Enrolment(credential, secret)


def current_enrolment(user: User) -> Enrolment | None:
    now = utcnow()
    for pending in factors.totp_credentials(user, confirmed=False):
        if now - pending.created_at < ENROLMENT_REUSE:
            return Enrolment(pending, secret_of(pending))
    return None


def confirm_enrolment(user: User, code: str, verifier: TotpVerifier, *, actor: str) -> bool:
    """Activate the enrolment in progress if ``code`` is valid for it (D02).

    Returns whether an older app was replaced (a person has one authenticator app; setting up
    a new one, e.g. on a new phone, replaces the old). Raises :class:`CodeRejected` when there
    is no enrolment in progress or the code is wrong; throttled like any TOTP check (D04).
    """
    enrolment = current_enrolment(user)
    if enrolment is None:
        raise CodeRejected("Your set-up has expired. Scan the new QR code")
    verifier.verify(user, code, [enrolment.credential])
    previous = factors.totp_credentials(user)
    if previous:
        db.session.execute(
            delete(TotpCredential).where(TotpCredential.id.in_([c.id for c in previous]))
        )
    enrolment.credential.confirmed_at = utcnow()
    db.session.flush()
    audit.record(
        "mfa.totp.added",
        actor=actor,
        target=user.sub,
        target_type="user",
        method=Method.TOTP.value,
        replaced=bool(previous),
    )
    factors.notify(
        user,
        change="added",
        method="a new authenticator app, replacing your previous one"
        if previous
        else "an authenticator app",
    )
    return bool(previous)
