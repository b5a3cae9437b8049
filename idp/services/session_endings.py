"""Ending SSO sessions on purpose: record it and tell the rest of the system, in one place.

Every path that ends sessions (sign out, sign out of one device or everywhere, password
change) audits it and announces ``events.sessions_ended`` so relying services hear through
back-channel logout (I04, E06). Call inside a unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence

from idp.services import audit, events
from idp.services.sso_sessions import SsoSession


def record_sessions_ended(
    sub: str, ended: Sequence[SsoSession], *, actor: str | None, event: str, how: str, reason: str
) -> None:
    audit.record(
        event,
        actor=actor,
        target=sub,
        target_type="user",
        how=how,
        count=len(ended),
        sids=[s.sid for s in ended],
    )
    if ended:
        events.sessions_ended.send(sub, sessions=list(ended), reason=reason)
