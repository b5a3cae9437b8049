"""The signed-in person, as the service sees them: ``current_user`` (Flask) or
``environ["secure_access.user"]`` (WSGI).

The person is identified by (``iss``, ``sub``) only, never by email (J05; OIDC Core §5.7): an
email address can change hands, a ``sub`` is never reassigned. Names, email, organisation and
roles come from the ID Token and the UserInfo response (checked to be about the same ``sub``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from secure_access_client.settings import ACR_MFA


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Organisation:
    """The organisation the person chose for this sign-in (the ``organisation`` claim)."""

    id: str | None
    name: str | None
    type: str | None = None
    urn: str | None = None
    ukprn: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_claim(cls, value: Any) -> Organisation | None:
        if isinstance(value, str) and value:
            return cls(id=value, name=value)
        if not isinstance(value, Mapping):
            return None
        ident = value.get("id")
        return cls(
            id=str(ident) if ident is not None else None,
            name=_text(value.get("name")),
            type=_text(value.get("type")),
            urn=str(value["urn"]) if value.get("urn") else None,
            ukprn=str(value["ukprn"]) if value.get("ukprn") else None,
            claims=dict(value),
        )

    def __str__(self) -> str:
        return self.name or self.id or ""


def _roles(value: Any) -> tuple[str, ...]:
    """The ``roles`` claim: a list of role codes (strings, or objects with a ``code``)."""
    if isinstance(value, str):
        return tuple(value.split())
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        return ()
    roles: list[str] = []
    for item in value:
        if isinstance(item, str):
            roles.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("code"), str):
            roles.append(item["code"])
    return tuple(roles)


@dataclass(frozen=True)
class User:
    """A signed-in person. ``claims`` holds every claim received, for anything not modelled."""

    iss: str
    sub: str
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    organisation: Organisation | None = None
    organisations: tuple[Organisation, ...] = ()
    roles: tuple[str, ...] = ()
    amr: tuple[str, ...] = ()
    acr: str | None = None
    auth_time: int | None = None
    sid: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    is_authenticated = True

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> User:
        given, family = _text(claims.get("given_name")), _text(claims.get("family_name"))
        name = _text(claims.get("name")) or " ".join(p for p in (given, family) if p) or None
        organisations = claims.get("organisations")
        amr = claims.get("amr")
        auth_time = claims.get("auth_time")
        return cls(
            iss=str(claims["iss"]),
            sub=str(claims["sub"]),
            name=name,
            given_name=given,
            family_name=family,
            email=_text(claims.get("email")),
            email_verified=claims.get("email_verified")
            if isinstance(claims.get("email_verified"), bool)
            else None,
            organisation=Organisation.from_claim(claims.get("organisation")),
            organisations=tuple(
                o
                for o in (
                    Organisation.from_claim(v)
                    for v in (organisations if isinstance(organisations, list) else [])
                )
                if o is not None
            ),
            roles=_roles(claims.get("roles")),
            amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
            acr=_text(claims.get("acr")),
            auth_time=int(auth_time) if isinstance(auth_time, (int, float)) else None,
            sid=_text(claims.get("sid")),
            claims=dict(claims),
        )

    @property
    def has_mfa(self) -> bool:
        """Whether this sign-in included a second factor (``acr`` is the MFA value)."""
        return self.acr == ACR_MFA

    def has_any_role(self, roles: Iterable[str]) -> bool:
        """Whether the person has at least one of ``roles`` for this service."""
        wanted = set(roles)
        return any(role in wanted for role in self.roles)


class AnonymousUser:
    """Nobody is signed in. Has the same attributes as :class:`User`, all empty."""

    is_authenticated = False
    iss = sub = name = given_name = family_name = email = email_verified = None
    organisation = acr = auth_time = sid = None
    organisations: tuple[Organisation, ...] = ()
    roles: tuple[str, ...] = ()
    amr: tuple[str, ...] = ()
    claims: Mapping[str, Any] = {}
    has_mfa = False

    def has_any_role(self, roles: Iterable[str]) -> bool:
        return False

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "AnonymousUser()"


ANONYMOUS = AnonymousUser()
