"""Checking a person's email and password, with throttling and without enumeration.

- B05 / ASVS 6.3.8: unknown, wrong, deactivated and not-yet-activated accounts all get the
  same exception, and an unknown account still costs one argon2id verification (against a
  dummy hash), so neither the answer nor its timing tells which case it was.
- B01-B03 / NIST SP 800-63B-4 §3.2.2: the failure counter is keyed by the canonical account
  (the user's sub, or a keyed hash of the canonical email when there is no such account, so
  unknown accounts throttle exactly like known ones), checked *before* the password is
  evaluated, and updated atomically in Redis.
- B06: the per-IP limit uses the address Werkzeug's ProxyFix settled on from the configured
  hop count; whatever string a client sends in X-Forwarded-For, a limit still applies.
- A08: a successful sign-in re-hashes the password when the argon2 parameters have changed.

Issue 3's budget (the POST costs at most 1.2x one argon2id verification): the account is read
with one Core query into a read-only :class:`Account` snapshot rather than through the ORM;
the ORM ``User`` is loaded only when something is written (a rehash, the compromised flag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import bindparam, select

from idp.extensions import db
from idp.models import StaffRole, User, UserStatus
from idp.services import audit
from idp.services.account_lock import report_lock
from idp.services.mfa.factors import any_factor
from idp.services.passwords import get_passwords
from idp.services.throttle import Outcome, account_key_for, get_throttle, ip_key
from idp.services.transaction import transaction
from idp.services.users import InvalidEmail, canonical_email
from idp.store import Store

PASSWORD = "password"  # noqa: S105 (the authenticator kind, not a password)
IP_LIMIT = 100  # sign-in attempts per IP per window: generous for a school behind one NAT
IP_WINDOW_SECONDS = 900


class SignInFailed(Exception):
    """Wrong email or password, or an account that cannot sign in. Deliberately vague."""


class SignInThrottled(Exception):
    """Too many attempts for this account or from this address. Deliberately vague too."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Account:
    """A read-only snapshot of the account row the sign-in POST reads (issue 3's budget).

    It carries what the password check and the sign-in steps ask of a person (the columns
    below). Anything else is delegated to the ORM ``User``, loaded on first use, so a step
    that needs more still gets the real thing (at the cost of one query).
    """

    __slots__ = (
        "_user",
        "email",
        "family_name",
        "given_name",
        "id",
        "password_compromised",
        "password_hash",
        "staff_role",
        "status",
        "sub",
    )
    id: int
    sub: str
    email: str
    given_name: str
    family_name: str
    status: UserStatus
    staff_role: StaffRole | None
    password_hash: str | None
    password_compromised: bool

    def __init__(self, row: Any) -> None:
        (
            self.id,
            self.sub,
            self.email,
            self.given_name,
            self.family_name,
            self.status,
            self.staff_role,
            self.password_hash,
            self.password_compromised,
        ) = row[:9]
        self._user: User | None = None

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()  # as User.name

    def orm_user(self) -> User:
        """The account as an ORM ``User`` in the request's session (one query, once)."""
        if self._user is None:
            user = db.session.get(User, self.id)
            if user is None:  # deleted since the snapshot: treat as a failed sign-in
                raise SignInFailed
            self._user = user
        return self._user

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not in the snapshot (relationships, timestamps …).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.orm_user(), name)

    def __repr__(self) -> str:
        return f"<Account {self.sub} {self.status}>"


#: The columns an :class:`Account` is read from, in order (other queries may join them).
ACCOUNT_COLUMNS = (
    User.id,
    User.sub,
    User.email,
    User.given_name,
    User.family_name,
    User.status,
    User.staff_role,
    User.password_hash,
    User.password_compromised,
)
# Built once (constructing it cost more CPU than running it). One round trip, with the
# "has a second factor?" question the MFA step asks next.
_FIND_ACCOUNT = select(*ACCOUNT_COLUMNS, any_factor(User.id)).where(
    User.email == bindparam("email")
)


_READ_BY_SUB = select(*ACCOUNT_COLUMNS).where(User.sub == bindparam("key"))
_READ_BY_ID = select(*ACCOUNT_COLUMNS).where(User.id == bindparam("key"))


def read_account(*, sub: str | None = None, user_id: int | None = None) -> Account | None:
    """The person with ``sub`` (or ``user_id``) as a snapshot, for the protocol endpoints.

    Issue 4: UserInfo and every user grant read one person per request, and loading an ORM
    ``User`` (select, identity map, instrumentation) was about a fifth of UserInfo's CPU. Read
    with Core on the request's own connection, so inside a grant's unit of work it sees what
    that unit of work sees.
    """
    statement, key = (_READ_BY_SUB, sub) if sub is not None else (_READ_BY_ID, user_id)
    if key is None:
        return None
    row = db.session.connection().execute(statement, {"key": key}).first()
    return Account(row) if row is not None else None


def find_account(raw_email: str) -> tuple[Account | None, bool]:
    """The account for ``raw_email`` and whether it has a second factor, in one query.

    Sent on an autocommit connection (a single SELECT is atomic), so PostgreSQL sees no
    BEGIN/ROLLBACK around it (SQLite never begins one for a SELECT), and read with Core into
    an :class:`Account`, skipping the ORM's identity map and instrumentation: both count
    against issue 3's 1.2x budget.
    """
    try:
        email = canonical_email(raw_email)
    except InvalidEmail:
        return None, False
    engine = db.engine
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            # SQLite starts no transaction for a SELECT, and switching costs it two PRAGMAs.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        row = connection.execute(_FIND_ACCOUNT, {"email": email}).first()
    if row is None:
        return None, False
    return Account(row), bool(row[-1])


@dataclass(frozen=True)
class SignedIn:
    #: The person, as a read-only snapshot; ``user.orm_user()`` gives the ORM object.
    user: Account
    #: Whether the person has a second factor (so the MFA step applies), found by the same
    #: query as the account, to save the sign-in POST a round trip.
    has_any_factor: bool = False
    #: The value at ``authenticate``'s ``read_key`` (None when unset or not asked for).
    read_value: bytes | str | None = None


def authenticate(
    identifier: str,
    password: str,
    *,
    ip: str | None,
    batch: Store | None = None,
    read_key: str | None = None,
) -> SignedIn:
    """Return the signed-in user, or raise SignInFailed / SignInThrottled.

    ``batch``: a store pipeline the caller executes after its own writes; the success
    bookkeeping is queued there to save a round trip (issue 3's 1.2x budget).
    ``read_key``: a store key the caller needs on success (the pending sign-in), read in the
    throttle's round trip for every attempt alike, and returned as ``read_value``.
    """
    throttle = get_throttle()
    user, has_factor = find_account(identifier)
    key = account_key_for(identifier, sub=user.sub if user else None)
    # The per-IP limit (B06) and the per-account check (B01) in one atomic round trip; a
    # refused IP is not counted against the account. The look-up above happens for unknown
    # and known accounts alike, so the order reveals nothing (B05).
    decision, read_value = throttle.check_after_limit_reading(
        key,
        PASSWORD,
        limit_key="signin-" + ip_key(ip),
        limit=IP_LIMIT,
        window_seconds=IP_WINDOW_SECONDS,
        read_key=read_key,
    )
    if decision.outcome is Outcome.LIMITED:
        raise SignInThrottled(decision.retry_after)
    if not decision.allowed:
        # Refused without evaluating the password (B01).
        with transaction():
            audit.record(
                "sign_in.throttled",
                actor=None,
                target=user.sub if user else None,
                target_type="user",
                outcome=audit.DENIED,
            )
        raise SignInThrottled(decision.retry_after)

    passwords = get_passwords()
    stored = user.password_hash if user else None
    valid = passwords.verify(stored, password)  # dummy hash when stored is None (B05)
    can_sign_in = user is not None and user.status is UserStatus.ACTIVE

    if not (valid and can_sign_in):
        failure = throttle.record_failure(key, PASSWORD)
        with transaction():
            audit.record(
                "sign_in.failed",
                actor=None,
                target=user.sub if user else None,
                target_type="user",
                outcome=audit.FAILURE,
                reason="unknown account"
                if user is None
                else ("wrong password" if not valid else f"account {user.status.value}"),
            )
            if failure.newly_locked and user is not None:
                report_lock(cast(User, user), failure, "too many failed sign-in attempts")
        raise SignInFailed

    assert user is not None
    throttle.record_success(key, PASSWORD, batch=batch)
    compromised = not user.password_compromised and passwords.is_blocklisted(password)
    rehash = passwords.needs_rehash(stored or "")
    if compromised or rehash:  # usually neither: the common path writes nothing here
        with transaction():
            record = user.orm_user()
            if compromised:
                # A05: a breached-list hit at sign-in forces a change before the sign-in ends.
                record.password_compromised = True
                audit.record(
                    "password.flagged_compromised",
                    actor=None,
                    target=user.sub,
                    target_type="user",
                    reason="on the breached-password list",
                )
            if rehash:
                record.password_hash = passwords.hash(password)
                audit.record(
                    "password.rehashed", actor=user.sub, target=user.sub, target_type="user"
                )
        # Keep the snapshot true to what was written (the replace-password step reads it).
        user.password_compromised = record.password_compromised
        user.password_hash = record.password_hash
    return SignedIn(user=user, has_any_factor=has_factor, read_value=read_value)


def verify_for_signed_in_user(user: User, password: str) -> bool:
    """Check a signed-in person's password (change password, confirm before a change).

    B04: every place that checks a password counts failures on the same per-account counter
    and refuses a locked account without evaluating the guess.
    """
    throttle = get_throttle()
    key = account_key_for(user.email, sub=user.sub)
    decision = throttle.check(key, PASSWORD)
    if not decision.allowed:
        raise SignInThrottled(decision.retry_after)
    if get_passwords().verify(user.password_hash, password):
        throttle.record_success(key, PASSWORD)
        return True
    failure = throttle.record_failure(key, PASSWORD)
    with transaction():
        audit.record(
            "password.check_failed",
            actor=user.sub,
            target=user.sub,
            target_type="user",
            outcome=audit.FAILURE,
        )
        if failure.newly_locked:
            report_lock(user, failure, "too many failed password checks")
    return False
