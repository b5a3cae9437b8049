"""What can go wrong when signing someone in or out, as exceptions a service can catch.

Every refusal carries a ``check``: a short, stable name for the rule that failed. Where a rule
has an OpenID Foundation RP conformance module, the check is named after it without the
``oidcc-client-test-`` prefix (``invalid-iss``, ``nonce-invalid``, ``idtoken-sig-none``...), so a
log line or an error page points straight at the requirement (security-requirements.md §2.2,
J01-J08). Messages never quote a token, a code or a secret.
"""

from __future__ import annotations


class SecureAccessError(Exception):
    """Base class: a sign-in, sign-out or back-channel logout was refused."""

    #: HTTP status the built-in error page uses.
    status = 400
    #: What the person sees as the page heading.
    title = "Sign-in failed"

    def __init__(self, message: str, *, check: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.check = check

    def __str__(self) -> str:
        return f"{self.message} [{self.check}]"


class ConfigurationError(SecureAccessError):
    """The ``SECURE_ACCESS_*`` settings are missing or unsafe (raised at start-up)."""

    title = "Sign-in is not set up"
    status = 500


class ProviderUnavailable(SecureAccessError):
    """Secure Access could not be reached, or answered with a server error.

    The documented degraded mode: people already signed in carry on until their local session
    expires; nobody new can sign in. There is no fallback login.
    """

    title = "Sign-in is not available right now"
    status = 503


class DiscoveryError(SecureAccessError):
    """Discovery or the JWKS is unusable, e.g. its ``issuer`` is not the pinned one (J02)."""


class StateError(SecureAccessError):
    """The callback's ``state`` is missing, unknown, already used or from another browser (J01)."""


class AuthorizationError(SecureAccessError):
    """The provider answered the authorization request with an error (RFC 6749 §4.1.2.1)."""

    status = 403
    title = "You could not be signed in"

    def __init__(self, message: str, *, check: str, error: str) -> None:
        super().__init__(message, check=check)
        self.error = error


class TokenError(SecureAccessError):
    """The token endpoint refused the code or the refresh token (RFC 6749 §5.2)."""

    def __init__(self, message: str, *, check: str = "token-error", error: str = "") -> None:
        super().__init__(message, check=check)
        self.error = error


class InvalidToken(SecureAccessError):
    """A JWT (ID Token, Logout Token or signed UserInfo) failed validation (J03, J04, J06, L02)."""


class InvalidUserInfo(SecureAccessError):
    """The UserInfo response is unusable, e.g. its ``sub`` is not the ID Token's (J05)."""


class InvalidLogoutToken(InvalidToken):
    """A back-channel Logout Token failed Back-Channel Logout 1.0 §2.6 (J06)."""


class LogoutStateError(SecureAccessError):
    """The return from the provider's logout has a missing or wrong ``state`` (J07)."""

    title = "Sign-out could not be confirmed"
