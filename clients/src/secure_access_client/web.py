"""The parts of HTTP the relying party deals in, independent of any web framework.

The Flask extension and the WSGI middleware translate their requests into :class:`HttpRequest`
and :class:`HttpResponse`, so both run exactly the same code (J01-J08).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from secure_access_client import pages
from secure_access_client.errors import StateError
from secure_access_client.user import User

#: The longest session cookie value accepted (ours are 43 characters).
COOKIE_VALUE_MAX = 64
#: The largest form body the library's own endpoints read (L02 Also: 8-16 KB).
MAX_FORM_BYTES = 16 * 1024


@dataclass
class HttpRequest:
    """The parts of an HTTP request the relying party reads."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    #: Called only by endpoints that read a form, so other requests' bodies are left alone.
    form: Callable[[], Mapping[str, Sequence[str]]] = dict
    #: The path with its query string, for "send me back here after sign-in".
    full_path: str = ""
    content_length: int | None = None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name) or []
        if len(values) > 1:
            # RFC 6749 §3.1: parameters MUST NOT be included more than once.
            raise StateError(
                f"The {name} parameter was sent more than once", check="repeated-param"
            )
        return values[0] if values else None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> HttpResponse:
        return cls(status, [("Location", location), ("Cache-Control", "no-store")])

    @classmethod
    def page(cls, status: int, body: bytes) -> HttpResponse:
        return cls(status, list(pages.PAGE_HEADERS), body)


class Context:
    """This request's view of the local session. Built by :meth:`RelyingParty.open`."""

    def __init__(self, cookie_value: str | None, data: dict[str, Any] | None) -> None:
        self.cookie_value = cookie_value
        self.data = data
        self.user: User | None = None
        #: The record changed and this request's copy must be saved as it is.
        self.dirty = False
        #: Only ``last_seen`` moved: merged into the stored record, never overwriting it.
        self.touched = False
        self.new_cookie = False
        self.clear_cookie = False
        #: True on the request that comes back from the provider's logout with the right state.
        self.just_signed_out = False

    @property
    def auth(self) -> dict[str, Any] | None:
        auth = self.data.get("auth") if self.data else None
        return auth if isinstance(auth, dict) else None

    @property
    def csrf_token(self) -> str | None:
        token = self.data.get("csrf") if self.data else None
        return token if isinstance(token, str) else None


def safe_next(value: str | None, default: str) -> str:
    """A same-site path to return to after sign-in; anything else becomes ``default``."""
    if (
        not value
        or len(value) > 2000
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 for c in value)
        or urlsplit(value).netloc
    ):
        return default
    return value
