"""Calls to Secure Access's token and UserInfo endpoints, through Authlib's requests client.

- Authlib's ``OAuth2Session`` builds the authorization URL with the PKCE S256 challenge
  (RFC 7636 §4.2) and makes the token requests with ``client_secret_basic``/``_post``, or with
  ``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2) signed here with joserfc.
- Token responses must be Bearer tokens (OIDC Core §3.1.3.3); errors become
  :class:`TokenError` (refused) or :class:`ProviderUnavailable` (unreachable, 5xx).
- UserInfo (OIDC Core §5.3) is asked with the Bearer header, size-capped, and refused unless its
  ``sub`` is the ID Token's (J05; §5.3.2); a signed (``application/jwt``) answer is verified
  like an ID Token.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any, Callable

import requests
from authlib.common.urls import add_params_to_qs
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import import_key

from secure_access_client.errors import (
    InvalidUserInfo,
    ProviderUnavailable,
    TokenError,
)
from secure_access_client.provider import MAX_DOCUMENT_BYTES, ProviderSource
from secure_access_client.settings import Settings
from secure_access_client.tokens import _Checks, verify_jwt

ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


class ProviderClient:
    """One service's calls to Secure Access (``provider`` may be swapped, e.g. by tests)."""

    def __init__(
        self,
        settings: Settings,
        provider: ProviderSource,
        http: requests.Session,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.http = http
        self.clock = clock

    def oauth(self, scope: str | None = None) -> OAuth2Session:
        settings = self.settings
        session = OAuth2Session(
            settings.client_id,
            client_secret=settings.client_secrets[0] if settings.client_secrets else None,
            token_endpoint_auth_method=settings.token_endpoint_auth_method,
            redirect_uri=settings.redirect_uri,
            scope=scope,
            code_challenge_method="S256",
        )
        if settings.token_endpoint_auth_method == "private_key_jwt":  # noqa: S105
            session.register_client_auth_method(("private_key_jwt", self._private_key_jwt))
        return session

    def _private_key_jwt(
        self, client: Any, method: str, uri: str, headers: dict[str, str], body: str
    ) -> tuple[str, dict[str, str], str]:
        """Client authentication by a signed assertion (OIDC Core §9, RFC 7523 §2.2)."""
        jwk = dict(self.settings.private_key or {})
        key = import_key(jwk)
        alg = str(jwk.get("alg") or ("ES256" if jwk.get("kty") == "EC" else "RS256"))
        now = int(self.clock())
        assertion = jwt.encode(
            {"alg": alg, "kid": jwk["kid"]},
            {
                "iss": self.settings.client_id,
                "sub": self.settings.client_id,
                "aud": uri,
                "iat": now,
                "exp": now + 60,
                "jti": secrets.token_urlsafe(16),
            },
            key,
            algorithms=[alg],
        )
        body = add_params_to_qs(
            body or "",
            [
                ("client_id", self.settings.client_id),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion),
            ],
        )
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(body))
        return uri, headers, body

    def token_request(self, call: Callable[[], Any]) -> dict[str, Any]:
        try:
            token = call()
        except OAuthError as error:
            code = str(error.error or "")
            raise TokenError(
                f"Secure Access refused the request ({code or 'no reason given'})",
                check=f"token-{code}" if ERROR_CODE.match(code) else "token-error",
                error=code,
            ) from None
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            if status >= 500:
                raise ProviderUnavailable(
                    "Secure Access had a problem", check="unavailable"
                ) from None
            raise TokenError(f"Secure Access answered {status}", check="token-error") from None
        except requests.RequestException as error:
            raise ProviderUnavailable(
                f"Secure Access cannot be reached ({type(error).__name__})", check="unavailable"
            ) from None
        except ValueError:
            raise TokenError(
                "Secure Access sent an unreadable token response", check="token-error"
            ) from None
        if not isinstance(token, Mapping):
            raise TokenError("Secure Access sent an unreadable token response", check="token-error")
        if str(token.get("token_type", "")).lower() != "bearer" or not isinstance(
            token.get("access_token"), str
        ):
            raise TokenError("Secure Access sent no bearer access token", check="token-type")
        return dict(token)

    def userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        """The UserInfo response (OIDC Core §5.3), refused unless it is about ``sub`` (J05)."""
        endpoint = self.provider.metadata().get("userinfo_endpoint")
        if not endpoint or not self.settings.fetch_userinfo:
            return {}
        try:
            with self.http.get(
                str(endpoint),
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.settings.http_timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
        except requests.RequestException as error:
            raise ProviderUnavailable(
                f"Secure Access cannot be reached ({type(error).__name__})", check="unavailable"
            ) from None
        if status >= 500:
            raise ProviderUnavailable("Secure Access had a problem", check="unavailable")
        if status != 200 or len(body) > MAX_DOCUMENT_BYTES:
            raise InvalidUserInfo(
                f"Secure Access's UserInfo answered {status}", check="userinfo-error"
            )
        if content_type == "application/jwt":
            checks = _Checks(
                InvalidUserInfo,
                "userinfo-sig-none",
                "userinfo-sig-hs256",
                "alg-not-allowed",
                "userinfo-invalid-sig",
            )
            claims = verify_jwt(
                body.decode("ascii", "replace"), self.provider, self.settings.algorithms, checks
            ).claims
            if claims.get("iss", self.settings.issuer) != self.settings.issuer:
                raise InvalidUserInfo(
                    "The UserInfo response has another issuer", check="userinfo-invalid-iss"
                )
            aud = claims.get("aud", self.settings.client_id)
            if self.settings.client_id not in ([aud] if isinstance(aud, str) else aud or []):
                raise InvalidUserInfo(
                    "The UserInfo response is for another service", check="userinfo-invalid-aud"
                )
        else:
            try:
                claims = json.loads(body)
            except ValueError:
                raise InvalidUserInfo(
                    "The UserInfo response is not JSON", check="userinfo-error"
                ) from None
        if not isinstance(claims, dict):
            raise InvalidUserInfo(
                "The UserInfo response is not a JSON object", check="userinfo-error"
            )
        if claims.get("sub") != sub:
            raise InvalidUserInfo(
                "The UserInfo response is about someone else", check="userinfo-invalid-sub"
            )
        return claims
