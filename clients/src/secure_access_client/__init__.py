"""Secure Access client library for relying services.

Sign people in to a Flask or plain WSGI service with Secure Access (OpenID Connect), and sign
them out everywhere. Installable on its own (``pip install ./clients``); it never imports the
provider (``idp``). Requirements it meets: security-requirements.md J01-J08, L01, L02.

Flask (``pip install 'secure-access-client[flask]'``)::

    from secure_access_client import SecureAccess, current_user, login_required

    sso = SecureAccess(app)     # reads SECURE_ACCESS_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _BASE_URL

    @app.route("/")
    @login_required(roles=["submitter"])
    def home():
        return f"Hello {current_user.name} of {current_user.organisation.name}"

Any other WSGI framework: :class:`SecureAccessMiddleware`. Tests: :mod:`.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secure_access_client.errors import (
    AuthorizationError,
    ConfigurationError,
    DiscoveryError,
    InvalidLogoutToken,
    InvalidToken,
    InvalidUserInfo,
    LogoutStateError,
    ProviderUnavailable,
    SecureAccessError,
    StateError,
    TokenError,
)
from secure_access_client.relying_party import RelyingParty
from secure_access_client.settings import ACR_MFA, Settings
from secure_access_client.user import AnonymousUser, Organisation, User
from secure_access_client.wsgi import Protect, SecureAccessMiddleware

if TYPE_CHECKING:  # Flask is an optional extra: imported on first use below.
    from secure_access_client.flask_integration import (
        SecureAccess,
        current_user,
        login_required,
    )

__version__ = "0.2.0"

_FLASK_NAMES = ("SecureAccess", "current_user", "login_required")


def __getattr__(name: str) -> Any:
    if name in _FLASK_NAMES:
        from secure_access_client import flask_integration

        return getattr(flask_integration, name)
    raise AttributeError(f"module 'secure_access_client' has no attribute {name!r}")


__all__ = [
    "ACR_MFA",
    "AnonymousUser",
    "AuthorizationError",
    "ConfigurationError",
    "DiscoveryError",
    "InvalidLogoutToken",
    "InvalidToken",
    "InvalidUserInfo",
    "LogoutStateError",
    "Organisation",
    "Protect",
    "ProviderUnavailable",
    "RelyingParty",
    "SecureAccess",
    "SecureAccessError",
    "SecureAccessMiddleware",
    "Settings",
    "StateError",
    "TokenError",
    "User",
    "__version__",
    "current_user",
    "login_required",
]
