"""Security keys and passkeys (WebAuthn Level 2) with py_webauthn, as a second factor.

Checklist items and how they are met:

- **D08** each ceremony's challenge is 64 random bytes (512 bits ≥ 64) from py_webauthn's
  ``secrets``-based generator, kept in the store for 5 minutes under a random reference
  that only this browser holds, bound to the person and the ceremony ("register" or
  "authenticate"), and taken with ``GETDEL``: single-use, so a replayed assertion finds no
  challenge. The RP ID (``webauthn_rp_id``) and the origin are checked on every response: the
  origin must be one of ``webauthn_origins`` exactly; outside production a loopback origin
  (``http://localhost:<port>``, ``http://127.0.0.1:<port>``) is accepted too, so ``make run``
  and the browser tests work on whatever port they get. That is done here, by checking the
  origin in clientDataJSON against the policy first and then handing py_webauthn that one
  origin as the expected value, so the library's own exact comparison still runs.
- **Sign counter** (WebAuthn §6.1.1): when the authenticator keeps a counter, each assertion
  must carry a larger value than the last one stored. A value that is not larger means a
  cloned authenticator or a replay: the sign-in is refused and ``mfa.webauthn.sign_count_
  regressed`` is audited. The signature is verified first, so only genuine assertions can
  raise that alarm. (py_webauthn is given a current count of 0 so that it does not refuse
  first with a generic error; the comparison is here instead.)
- **K01** staff must use WebAuthn: the phishing-resistant option (NIST SP 800-63B-4 §2.2.2).
- **B01/B04** failed assertions count on the throttle's ``"webauthn"`` counter.

``amr`` (RFC 8176): ``hwk`` for a roaming authenticator (``authenticatorAttachment``
``cross-platform``, e.g. a USB or NFC security key) whose credential is not synced;
``swk`` for a platform authenticator (``platform``: Windows Hello, Touch ID, Android) and for
any backed-up, synced passkey. Without attestation (we ask for none, to avoid collecting
device data) we cannot know whether a platform authenticator keeps its key in hardware, so
only roaming, device-bound keys claim ``hwk``. When the browser does not report the
attachment, transports decide: ``internal`` or ``hybrid`` mean ``swk``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    generate_challenge,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.config import Settings
from idp.extensions import db
from idp.models import User, WebAuthnCredential
from idp.models.base import utcnow
from idp.services import audit
from idp.services.mfa import attempts, factors
from idp.services.mfa.common import (
    AMR_HARDWARE_KEY,
    AMR_SOFTWARE_KEY,
    ChallengeMissing,
    Method,
    WebAuthnRejected,
)
from idp.services.throttle import Throttle
from idp.services.transaction import transaction
from idp.store import Store

RP_NAME: Final = "Secure Access"
CHALLENGE_SECONDS: Final = 300
CHALLENGE_PREFIX: Final = "mfa:webauthn:"
REGISTER: Final = "register"
AUTHENTICATE: Final = "authenticate"
_LOOPBACK_ORIGIN = re.compile(r"http://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?")


@dataclass(frozen=True)
class RelyingParty:
    """Who we are to authenticators: the RP ID and the origins ceremonies may come from."""

    rp_id: str
    origins: tuple[str, ...]
    allow_loopback: bool = False
    name: str = RP_NAME

    @classmethod
    def from_settings(cls, settings: Settings) -> RelyingParty:
        origins = tuple(o.rstrip("/") for o in settings.webauthn_origins) or (
            _origin_of(settings.public_base_url),
        )
        return cls(
            rp_id=settings.webauthn_rp_id or default_rp_id(settings.public_base_url),
            origins=origins,
            allow_loopback=not settings.is_production,
        )

    def origin_allowed(self, origin: str) -> bool:
        if origin in self.origins:
            return True
        return self.allow_loopback and _LOOPBACK_ORIGIN.fullmatch(origin) is not None


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def default_rp_id(public_base_url: str) -> str:
    """The host name of the public URL; ``localhost`` for an IP address (browsers refuse IP
    addresses as RP IDs, WebAuthn §5.1.3 step 7)."""
    host = urlsplit(public_base_url).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return "localhost"


class Ceremonies:
    """Single-use, expiring challenges (D08), each bound to one person and one ceremony."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(self, purpose: str, sub: str, challenge: bytes) -> str:
        ref = secrets.token_urlsafe(24)
        record = {"p": purpose, "s": sub, "c": _b64(challenge)}
        self.store.set(CHALLENGE_PREFIX + ref, json.dumps(record), ex=CHALLENGE_SECONDS)
        return ref

    def take(self, ref: str | None, purpose: str, sub: str) -> bytes:
        """The challenge, removed as it is read; :class:`ChallengeMissing` if none is live."""
        if not ref:
            raise ChallengeMissing("no challenge")
        raw = self.store.getdel(CHALLENGE_PREFIX + ref)
        if raw is None:
            raise ChallengeMissing("the challenge expired or was used")
        record = json.loads(raw)
        if record.get("p") != purpose or record.get("s") != sub:
            raise ChallengeMissing("the challenge belongs to another ceremony")
        return _unb64(str(record["c"]))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def user_handle(user: User) -> bytes:
    """The WebAuthn user.id: the opaque ``sub``, never the email (WebAuthn §14.6.1)."""
    return user.sub.encode()


def _transports(stored: list[str]) -> list[AuthenticatorTransport]:
    known = {t.value: t for t in AuthenticatorTransport}
    return [known[t] for t in stored if t in known]


def _descriptors(credentials: list[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(id=c.credential_id, transports=_transports(c.transports))
        for c in credentials
    ]


def _checked_origin(rp: RelyingParty, client_data_json: bytes) -> str:
    try:
        origin = parse_client_data_json(client_data_json).origin
    except Exception:
        raise WebAuthnRejected("malformed client data") from None
    if not rp.origin_allowed(origin):
        raise WebAuthnRejected("unexpected origin")
    return origin


# -- registration ------------------------------------------------------------------------


def registration_options(user: User, rp: RelyingParty, ceremonies: Ceremonies) -> tuple[str, str]:
    """Options for ``navigator.credentials.create()`` (JSON) and the ceremony's reference."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_name=user.email,
        user_id=user_handle(user),
        user_display_name=user.name or user.email,
        challenge=generate_challenge(),
        timeout=CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(factors.webauthn_credentials(user)),
    )
    ref = ceremonies.begin(REGISTER, user.sub, options.challenge)
    return ref, options_to_json(options)


def verify_registration(
    user: User,
    rp: RelyingParty,
    ceremonies: Ceremonies,
    ref: str | None,
    response: dict[str, Any],
    *,
    name: str,
    actor: str,
) -> WebAuthnCredential:
    """Check the browser's answer to :func:`registration_options` and keep the new key.

    ``response`` is the PublicKeyCredential as JSON (``webauthn.js`` builds it). Raises
    :class:`WebAuthnRejected` (or :class:`ChallengeMissing`). The caller commits.
    """
    label = factors.clean_name(name)
    challenge = ceremonies.take(ref, REGISTER, user.sub)
    try:
        parsed: RegistrationCredential = parse_registration_credential_json(response)
        origin = _checked_origin(rp, parsed.response.client_data_json)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=origin,
            require_user_verification=False,
        )
    except WebAuthnException as error:
        raise WebAuthnRejected(str(error)) from None
    taken = db.session.scalar(
        select(WebAuthnCredential.id).where(
            WebAuthnCredential.credential_id == verified.credential_id
        )
    )
    if taken is not None:
        raise WebAuthnRejected("This security key is already registered")
    extensions = response.get("clientExtensionResults")
    cred_props = extensions.get("credProps") if isinstance(extensions, dict) else None
    transports = [t.value for t in parsed.response.transports or []]
    attachment = parsed.authenticator_attachment
    if attachment is AuthenticatorAttachment.PLATFORM and "internal" not in transports:
        transports.append("internal")  # remembered for amr when an assertion omits it
    credential = WebAuthnCredential(
        user_id=user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports,
        aaguid=verified.aaguid,
        discoverable=bool(isinstance(cred_props, dict) and cred_props.get("rk")),
        backed_up=verified.credential_backed_up,
        name=label,
    )
    db.session.add(credential)
    db.session.flush()
    audit.record(
        "mfa.webauthn.added",
        actor=actor,
        target=user.sub,
        target_type="user",
        method=Method.WEBAUTHN.value,
        key_name=label,
        aaguid=verified.aaguid,
    )
    factors.notify(user, change="added", method=factors.describe_key(credential))
    return credential


# -- authentication ----------------------------------------------------------------------


def authentication_options(user: User, rp: RelyingParty, ceremonies: Ceremonies) -> tuple[str, str]:
    """Options for ``navigator.credentials.get()`` (JSON) and the ceremony's reference."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=generate_challenge(),
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=_descriptors(factors.webauthn_credentials(user)),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    ref = ceremonies.begin(AUTHENTICATE, user.sub, options.challenge)
    return ref, options_to_json(options)


@dataclass(frozen=True)
class Verified:
    credential: WebAuthnCredential
    amr: str


def amr_for(
    attachment: AuthenticatorAttachment | None, backed_up: bool, transports: list[str]
) -> str:
    """``hwk`` or ``swk`` (see the module docstring)."""
    if backed_up or attachment is AuthenticatorAttachment.PLATFORM:
        return AMR_SOFTWARE_KEY
    if attachment is AuthenticatorAttachment.CROSS_PLATFORM:
        return AMR_HARDWARE_KEY
    return AMR_SOFTWARE_KEY if {"internal", "hybrid"} & set(transports) else AMR_HARDWARE_KEY


def verify_authentication(
    user: User,
    rp: RelyingParty,
    ceremonies: Ceremonies,
    ref: str | None,
    response: dict[str, Any],
    throttle: Throttle,
) -> Verified:
    """Check an assertion against the person's keys; throttled, single-use, counter-checked.

    Raises :class:`WebAuthnRejected` (failures are counted and audited, and committed here).
    On success the caller commits the new sign count.
    """
    key = attempts.check(throttle, user, Method.WEBAUTHN)
    try:
        verified = _verify_assertion(user, rp, ceremonies, ref, response)
    except WebAuthnRejected:
        attempts.failed(throttle, user, key, Method.WEBAUTHN)
        raise
    attempts.succeeded(throttle, key, Method.WEBAUTHN)
    return verified


def _verify_assertion(
    user: User,
    rp: RelyingParty,
    ceremonies: Ceremonies,
    ref: str | None,
    response: dict[str, Any],
) -> Verified:
    challenge = ceremonies.take(ref, AUTHENTICATE, user.sub)
    try:
        parsed: AuthenticationCredential = parse_authentication_credential_json(response)
    except WebAuthnException as error:
        raise WebAuthnRejected(str(error)) from None
    stored = next(
        (c for c in factors.webauthn_credentials(user) if c.credential_id == parsed.raw_id),
        None,
    )
    if stored is None:
        raise WebAuthnRejected("not one of this person's keys")
    origin = _checked_origin(rp, parsed.response.client_data_json)
    try:
        result = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=origin,
            credential_public_key=stored.public_key,
            credential_current_sign_count=0,  # compared below, after the signature
            require_user_verification=False,
        )
    except WebAuthnException as error:
        raise WebAuthnRejected(str(error)) from None
    new_count = result.new_sign_count
    if (new_count > 0 or stored.sign_count > 0) and new_count <= stored.sign_count:
        with transaction():
            audit.record(
                "mfa.webauthn.sign_count_regressed",
                actor=None,
                target=user.sub,
                target_type="user",
                outcome=audit.DENIED,
                reason="the key's signature counter did not increase: a cloned key or a replay",
                key_name=stored.name,
                stored_count=stored.sign_count,
                presented_count=new_count,
            )
        raise WebAuthnRejected("signature counter did not increase")
    stored.sign_count = new_count
    stored.backed_up = result.credential_backed_up
    stored.last_used_at = utcnow()
    return Verified(
        credential=stored,
        amr=amr_for(
            parsed.authenticator_attachment, result.credential_backed_up, stored.transports
        ),
    )
