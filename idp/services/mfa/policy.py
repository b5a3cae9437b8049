"""Who must use a second factor, which factors count for them, and when to offer one.

- Helpdesk staff (``User.staff_role``) always, and only a phishing-resistant factor counts for
  them: a security key or passkey (K01; NIST SP 800-63B-4 §2.2.2, ASVS 6.3.7).
- Anyone signing in to a service marked ``require_mfa``, or for an authorization request whose
  ``acr_values`` demand it (the OIDC room sets ``pending.data["require_mfa"]`` through
  ``flow.start_step_up(..., require_mfa=True)`` or ``flow.start``).
- Everyone else may choose to: once they have a factor it is asked for at every sign-in, and
  people without one are offered it (:class:`OfferSchedule`).

``must_keep_a_factor`` decides whether the last factor may be removed: staff, and people
granted access to a service that requires MFA (they would be made to enrol again there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from idp.extensions import db
from idp.models import AccessGrant, Service, User
from idp.services.clients import find_service
from idp.services.mfa.common import DEFAULT_CLOCK, Clock, Method
from idp.store import Store

if TYPE_CHECKING:
    from idp.services.mfa.factors import Factors

OFFER_PREFIX = "mfa:offer:"
DAY = 86400


def is_staff(user: User) -> bool:
    return user.staff_role is not None


def service_requires_mfa(client_id: str | None) -> bool:
    if not client_id:
        return False
    service = find_service(client_id)
    return bool(service and service.require_mfa)


def required_at_sign_in(user: User, *, client_id: str | None, demanded: bool) -> bool:
    """Whether this sign-in must end with a second factor (the policy in the module doc)."""
    return is_staff(user) or demanded or service_requires_mfa(client_id)


def must_keep_a_factor(user: User) -> bool:
    """Whether removing the person's last acceptable factor is refused."""
    if is_staff(user):
        return True
    granted = db.session.scalar(
        select(AccessGrant.id)
        .join(Service, Service.id == AccessGrant.service_id)
        .where(AccessGrant.user_id == user.id, Service.require_mfa.is_(True))
        .limit(1)
    )
    return granted is not None


def satisfies_policy(user: User, factors: Factors) -> bool:
    """Whether the person has a factor that policy accepts for them (K01: staff need WebAuthn)."""
    if is_staff(user):
        return bool(factors.webauthn)
    return factors.any


def methods_accepted(user: User, factors: Factors) -> list[Method]:
    """The methods the MFA step offers this person, best first.

    Staff who have a security key may use only that (K01); if they lost it, a helpdesk
    administrator removes it after checking who they are (D07). Staff without one may prove
    an older factor, and are then made to register a key (the ``mfa_enrol`` step).
    """
    methods = factors.methods
    if is_staff(user) and factors.webauthn:
        return [Method.WEBAUTHN]
    return methods


class OfferSchedule:
    """When to show "Protect your account" to someone who has no second factor.

    Not at a person's first sign-in (usually straight after accepting their invitation, on the
    way to the service they were invited to), then ``interval_days`` after it and after each
    "Not now". The next date lives in the store: losing it only postpones the offer. Keys
    expire after a year, so people who stopped signing in leave nothing behind.
    """

    def __init__(self, store: Store, *, interval_days: int, clock: Clock = DEFAULT_CLOCK) -> None:
        self.store = store
        self.interval = interval_days * DAY
        self.clock = clock

    def _key(self, sub: str) -> str:
        return OFFER_PREFIX + sub

    def due(self, sub: str) -> bool:
        """Whether to offer now. The first call for a person starts their interval."""
        now = self.clock()
        return self.due_from(now, self._set_first_date(self.store, sub, now))

    def queue_due(self, batch: Store, sub: str) -> float:
        """Queue :meth:`due`'s one command on ``batch`` (a pipeline the caller executes).

        Returns the moment to pass to :meth:`due_from` with that command's reply.
        """
        now = self.clock()
        self._set_first_date(batch, sub, now)
        return now

    @staticmethod
    def due_from(now: float, reply: bytes | str | None) -> bool:
        """The answer of :meth:`due`, from its command's reply (None: this was the first ask)."""
        return reply is not None and now >= int(reply)

    def _set_first_date(self, store: Store, sub: str, now: float) -> Any:
        # One round trip (SET NX GET, Redis 7): sets the date if there was none and returns
        # the previous one.
        return store.set(self._key(sub), int(now + self.interval), ex=365 * DAY, nx=True, get=True)

    def postpone(self, sub: str, *, until: float | None = None) -> None:
        """ "Not now": ask again after the interval (or at ``until``)."""
        moment = until if until is not None else self.clock() + self.interval
        self.store.set(self._key(sub), int(moment), ex=365 * DAY)

    def forget(self, sub: str) -> None:
        self.store.delete(self._key(sub))
