"""Second factors: authenticator apps (TOTP), security keys and passkeys (WebAuthn), recovery
codes, and the policy that says who needs which. Checklist section D, plus B01/B04 (their
throttle counters), E05 (changes need a recent sign-in: the views) and K01 (staff).

Modules: :mod:`.policy` (who must use MFA, what counts), :mod:`.factors` (queries, removal,
emails), :mod:`.totp`, :mod:`.webauthn`, :mod:`.recovery`, :mod:`.attempts` (throttling).
The getters below build each service once per app from its settings, store and throttle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from flask import current_app

from idp.config import Settings
from idp.services.mfa.common import (
    AMR_HARDWARE_KEY,
    AMR_MFA,
    AMR_OTP,
    AMR_SOFTWARE_KEY,
    ChallengeMissing,
    CodeRejected,
    CodeReused,
    LastFactorRequired,
    Method,
    MfaError,
    MfaThrottled,
    NoSuchFactor,
    WebAuthnRejected,
)
from idp.services.mfa.policy import OfferSchedule
from idp.services.mfa.totp import TotpVerifier
from idp.services.mfa.webauthn import Ceremonies, RelyingParty
from idp.services.throttle import get_throttle
from idp.store import get_store

__all__ = [
    "AMR_HARDWARE_KEY",
    "AMR_MFA",
    "AMR_OTP",
    "AMR_SOFTWARE_KEY",
    "ChallengeMissing",
    "CodeRejected",
    "CodeReused",
    "LastFactorRequired",
    "Method",
    "MfaError",
    "MfaThrottled",
    "NoSuchFactor",
    "WebAuthnRejected",
    "get_ceremonies",
    "get_offer_schedule",
    "get_relying_party",
    "get_totp_verifier",
]

T = TypeVar("T")


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _cached(name: str, build: Callable[[], T]) -> T:
    """One instance per app, built on first use (the store and throttle exist by then)."""
    extensions = current_app.extensions
    if name not in extensions:
        extensions[name] = build()
    return cast(T, extensions[name])


def get_totp_verifier() -> TotpVerifier:
    verifier: TotpVerifier = _cached("mfa.totp", lambda: TotpVerifier(get_store(), get_throttle()))
    return verifier


def get_relying_party() -> RelyingParty:
    rp: RelyingParty = _cached("mfa.rp", lambda: RelyingParty.from_settings(_settings()))
    return rp


def get_ceremonies() -> Ceremonies:
    ceremonies: Ceremonies = _cached("mfa.ceremonies", lambda: Ceremonies(get_store()))
    return ceremonies


def get_offer_schedule() -> OfferSchedule:
    schedule: OfferSchedule = _cached(
        "mfa.offer",
        lambda: OfferSchedule(get_store(), interval_days=_settings().mfa_offer_interval_days),
    )
    return schedule
