"""One helpdesk action applied to up to 100 people at once, with a result for each (issue 8).

The usual case is a school's whole staff list after an incident ("sign them all out") or a
batch of invitations that went astray. Rules:

- At most :data:`BULK_LIMIT` distinct addresses; more is refused before anything is done.
- Only the actions that need nothing but a reason (:data:`BULK_ACTIONS`): never an MFA reset,
  which needs an identity check per person (D07).
- Each row is its own unit of work, so one failure (a refused action, even a database error)
  never undoes or stops the others; each row is audited by the action itself, and the batch
  as a whole once more (``helpdesk.bulk``) with its counts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from idp.models import User
from idp.services import audit, helpdesk_actions, users
from idp.services.helpdesk_actions import Action, ActionRefused, check_actor, clean_reason
from idp.services.transaction import transaction

log = logging.getLogger(__name__)

BULK_LIMIT: Final = 100

BULK_ACTIONS: Final = (
    Action.SEND_RESET,
    Action.RESEND_INVITATION,
    Action.UNLOCK,
    Action.SIGN_OUT,
    Action.DEACTIVATE,
)

#: What the bulk form calls each action.
LABELS: Final = {
    Action.SEND_RESET: "Send a password reset link",
    Action.RESEND_INVITATION: "Resend the invitation",
    Action.UNLOCK: "Unlock",
    Action.SIGN_OUT: "Sign out everywhere",
    Action.DEACTIVATE: "Deactivate",
}

_RUN: Final[dict[Action, Callable[..., object]]] = {
    Action.SEND_RESET: helpdesk_actions.send_password_reset,
    Action.RESEND_INVITATION: helpdesk_actions.resend_invitation,
    Action.UNLOCK: helpdesk_actions.unlock,
    Action.SIGN_OUT: helpdesk_actions.sign_out_everywhere,
    Action.DEACTIVATE: helpdesk_actions.deactivate,
}

_SEPARATORS = re.compile(r"[\n,;]+")
_BRACKETED = re.compile(r"<([^<>]*)>")


class TooMany(ValueError):
    """More addresses than :data:`BULK_LIMIT`: nothing was done."""


class Outcome(StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"
    NOT_APPLICABLE = "not_applicable"
    FAILED = "failed"


@dataclass(frozen=True)
class RowResult:
    email: str
    outcome: Outcome
    why: str = ""


def parse_addresses(text: str) -> list[str]:
    """Addresses one per line or separated by commas (or semicolons, as Outlook copies them,
    with names: ``Ada <ada@...>``), in the order given, each once whatever its case.
    Raises :class:`TooMany` past the limit."""
    seen: dict[str, str] = {}
    for part in _SEPARATORS.split(text or ""):
        # "Ada Lovelace <ada@school.sch.uk>", as mail programs copy addresses, counts as ada@...
        bracketed = _BRACKETED.search(part)
        cleaned = (bracketed.group(1) if bracketed else part).strip()
        if cleaned and cleaned.lower() not in seen:
            seen[cleaned.lower()] = cleaned
    if len(seen) > BULK_LIMIT:
        raise TooMany(
            f"Enter {BULK_LIMIT} email addresses or fewer. You entered {len(seen)}, "
            "so nothing was done"
        )
    if not seen:
        raise ValueError("Enter at least one email address")
    return list(seen.values())


def run(addresses: list[str], action: Action, *, actor: User, reason: str) -> list[RowResult]:
    """Apply ``action`` to each address in its own unit of work; return a result per row."""
    if action not in _RUN:
        raise ActionRefused("This action cannot be done in bulk")
    if len(addresses) > BULK_LIMIT:
        raise TooMany(f"Enter {BULK_LIMIT} email addresses or fewer")
    check_actor(actor)
    reason = clean_reason(reason)
    actor_sub = actor.sub
    results = [_one(address, action, actor=actor, reason=reason) for address in addresses]
    counts = {outcome.value: 0 for outcome in Outcome}
    for result in results:
        counts[result.outcome.value] += 1
    with transaction():
        audit.record(
            "helpdesk.bulk",
            actor=actor_sub,
            reason=reason,
            action=action.value,
            rows=len(results),
            counts=counts,
        )
    return results


def _one(address: str, action: Action, *, actor: User, reason: str) -> RowResult:
    try:
        with transaction():
            try:
                users.canonical_email(address)
            except users.InvalidEmail:
                return RowResult(address, Outcome.NOT_FOUND, "This is not a valid email address")
            target = users.find_by_email(address)
            if target is None:
                return RowResult(address, Outcome.NOT_FOUND, "No account uses this email address")
            _RUN[action](target, actor=actor, reason=reason)
    except ActionRefused as refused:
        return RowResult(address, Outcome.NOT_APPLICABLE, str(refused))
    except Exception:  # one row's failure must not stop the rest (issue 8)
        log.exception("bulk %s failed for one row", action.value)
        return RowResult(address, Outcome.FAILED, "Something went wrong. Nothing was changed")
    return RowResult(address, Outcome.DONE)
