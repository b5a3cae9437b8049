"""What every MFA module shares: the methods, their ``amr`` values and the domain exceptions.

``amr`` values are RFC 8176 §2: ``otp`` for an authenticator app (TOTP), ``hwk`` for a
security key, ``swk`` for a platform authenticator or passkey, and ``mfa`` once two distinct
factors were used (NIST SP 800-63B-4 §2.2.1). A recovery code has no RFC 8176 value; it never
ends a sign-in by itself (it leads to re-enrolment, which adds the new factor's value).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Final

Clock = Callable[[], float]
DEFAULT_CLOCK: Final[Clock] = time.time

#: RFC 8176 §2 values.
AMR_OTP: Final = "otp"
AMR_HARDWARE_KEY: Final = "hwk"
AMR_SOFTWARE_KEY: Final = "swk"
AMR_MFA: Final = "mfa"


class Method(enum.StrEnum):
    """A way to prove the second factor. Also the throttle kind of each (B01 "Also")."""

    TOTP = "totp"
    WEBAUTHN = "webauthn"
    RECOVERY_CODE = "recovery_code"


class MfaError(Exception):
    """Base class: something about a second factor went wrong; the message is for people."""


class MfaThrottled(MfaError):
    """Too many wrong attempts with this method: refused without checking it (B01, D04)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many attempts")
        self.retry_after = retry_after


class CodeRejected(MfaError):
    """A code (TOTP or recovery) is wrong, expired or already used. Deliberately one message."""


class CodeReused(CodeRejected):
    """A right code whose time-step was already used (D03). Only enrolment says so: a person
    setting up an app is already signed in, and otherwise meets a baffling "wrong code" when
    they confirm within 30 seconds of signing in with their previous app."""


class WebAuthnRejected(MfaError):
    """A WebAuthn response failed verification (origin, RP ID, challenge, signature, counter)."""


class ChallengeMissing(WebAuthnRejected):
    """No live challenge for this ceremony: expired (5 minutes), used, or never issued (D08)."""


class LastFactorRequired(MfaError):
    """Removing this factor would leave someone who must use MFA without an acceptable one."""


class NoSuchFactor(MfaError, LookupError):
    """The factor does not exist or belongs to someone else."""
