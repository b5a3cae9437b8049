"""Which organisation a person acts for at a service, and remembering that choice.

A person in several organisations picks one when a service asks for the ``organisation`` or
``roles`` scope (DESIGN §4 "Choose organisation"; issue 7; DfE Sign-in's select-organisation
interaction, reference/dfe-signin.md §2 row 2). The choice is per *authorization request*, not
per sign-in: the same person may act for Hill Top at Collect and for Riverside at
School-to-School in one SSO session.

The last choice is remembered in the store per SSO session (``sid``) and service, so a silent
re-authorization (``prompt=none``, OIDC Core §3.1.2.1; F06) can reuse it instead of failing with
``interaction_required``. It expires with the longest a session can live and is forgotten when
the person leaves that organisation (:func:`remembered` checks membership every time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from flask import current_app

from idp.config import Settings
from idp.models import Organisation
from idp.store import get_store

#: The scopes that need an organisation (idp.oidc.claims releases them for the chosen one).
ORGANISATION_SCOPES: Final = frozenset({"organisation", "roles"})
_KEY: Final = "orgchoice:{}:{}"


def wants_organisation(scopes: Sequence[str] | str) -> bool:
    """Does a request for ``scopes`` need the person to act for one organisation?"""
    values = scopes.split() if isinstance(scopes, str) else scopes
    return bool(ORGANISATION_SCOPES.intersection(values))


def remember(sid: str, client_id: str, organisation: Organisation) -> None:
    """Note ``organisation`` as this session's choice at ``client_id``."""
    settings: Settings = current_app.extensions["settings"]
    get_store().set(
        _KEY.format(sid, client_id), organisation.public_id, ex=settings.session_absolute_seconds
    )


def remembered(
    sid: str, client_id: str, organisations: Sequence[Organisation]
) -> Organisation | None:
    """This session's last choice at ``client_id``, if the person still belongs to it."""
    raw = get_store().get(_KEY.format(sid, client_id))
    if raw is None:
        return None
    public_id = raw.decode() if isinstance(raw, bytes) else str(raw)
    return next((o for o in organisations if o.public_id == public_id), None)


def find(organisations: Sequence[Organisation], public_id: str | None) -> Organisation | None:
    """The organisation with ``public_id`` among the person's own (None: not one of theirs)."""
    if not public_id:
        return None
    return next((o for o in organisations if o.public_id == public_id), None)
