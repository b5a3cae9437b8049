"""The back-channel logout receiver: Back-Channel Logout 1.0 §2.5-§2.8 (J06).

Secure Access POSTs ``logout_token=<JWT>`` when a session that signed in here ends. The token
is validated by :func:`~secure_access_client.tokens.validate_logout_token` (§2.6: signature
with the pinned algorithms, ``iss``, ``aud``, ``iat``/``exp``, ``typ``, ``events``, ``sub`` or
``sid``, no ``nonce``), its ``jti`` may be used once (remembered in the session store, so every
instance of the service shares what it has seen), and then every matching local session ends
(§2.7: by ``sid``, or every session of ``sub``). The answer is 200, or 400 with an error
(§2.8), always with ``Cache-Control: no-store``. The body is capped before it is parsed.
"""

from __future__ import annotations

import logging
from typing import Callable

from secure_access_client.errors import InvalidLogoutToken, SecureAccessError
from secure_access_client.provider import ProviderSource
from secure_access_client.sessions import SessionStore, digest
from secure_access_client.settings import Settings
from secure_access_client.tokens import validate_logout_token
from secure_access_client.web import MAX_FORM_BYTES, HttpRequest, HttpResponse

log = logging.getLogger("secure_access_client")


class BackchannelLogout:
    """Receives Logout Tokens for one service and ends its sessions."""

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        provider: ProviderSource,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.store = store
        self.provider = provider
        self.clock = clock

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Back-Channel Logout 1.0 §2.5-§2.8: validate the Logout Token, end the sessions."""
        headers = [("Cache-Control", "no-store"), ("Content-Type", "application/json")]
        if request.method != "POST":
            return HttpResponse(405, [*headers, ("Allow", "POST")], b'{"error":"invalid_request"}')
        if (request.content_length or 0) > MAX_FORM_BYTES:
            # L02 Also: refused on its declared size, before anything parses it.
            return HttpResponse(413, headers, b'{"error":"invalid_request"}')
        try:
            values = request.form().get("logout_token") or []
            if len(values) != 1:
                raise InvalidLogoutToken("Send exactly one logout_token", check="missing-token")
            now = self.clock()
            claims = validate_logout_token(
                values[0],
                self.provider,
                self.settings.algorithms,
                issuer=self.settings.issuer,
                client_id=self.settings.client_id,
                now=now,
                skew=self.settings.clock_skew,
                max_token_age=self.settings.max_token_age,
            ).claims
            # Remember the jti until the token could no longer pass the iat/exp checks anyway.
            keep = int(
                max(float(claims["exp"]), float(claims["iat"]) + self.settings.max_token_age) - now
            )
            marker = digest("jti", self.settings.issuer, str(claims["jti"]))
            if not self.store.remember_once(marker, keep + 2 * self.settings.clock_skew):
                raise InvalidLogoutToken("This Logout Token was already used", check="replayed-jti")
        except SecureAccessError as error:
            log.warning("Back-channel logout refused: %s", error)
            body = f'{{"error":"invalid_request","error_description":"{error.check}"}}'
            return HttpResponse(400, headers, body.encode())
        ended = self.end_sessions(sub=claims.get("sub"), sid=claims.get("sid"))
        log.info(
            "Back-channel logout: ended %d session(s) (sub %s, sid %s)",
            ended,
            claims.get("sub"),
            claims.get("sid"),
        )
        return HttpResponse(200, headers, b"{}")

    def end_sessions(self, *, sub: str | None, sid: str | None) -> int:
        """End local sessions by ``sid`` (and ``sub`` if given), or all of ``sub``'s (BCL §2.7)."""
        issuer = self.settings.issuer
        index = digest("sid", issuer, sid) if sid else digest("sub", issuer, str(sub))
        ended = 0
        for key in self.store.index_members(index):
            data = self.store.load(key)
            auth = (data or {}).get("auth") or {}
            if sid and sub and auth.get("sub") not in (None, sub):
                continue  # a sid that names someone else's session is not a reason to end it
            if data is not None:
                ended += 1
            self.store.delete(key)
        self.store.drop_index(index)
        return ended
