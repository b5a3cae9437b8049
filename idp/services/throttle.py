"""Online-guessing defence: per-account failure counters and generic rate limits, in Redis.

Checklist items (``../shared/reference/security-requirements.md`` §B, C01) and how they are met:

- **B01** at most ``max_failures`` (10) attempts per account and authenticator kind in
  ``window_seconds`` (900); the next is refused by :meth:`Throttle.check` *before* the
  credential is evaluated, and the account+kind stays locked for one window. On top of that a
  progressive delay (NIST SP 800-63B-4 §3.2.2): after ``free_attempts`` (5) consecutive failures
  each further attempt must wait 1 s, 2 s, 4 s … (capped at ``max_delay_seconds``) after the
  previous one. NIST's hard cap of 100 consecutive failures is kept too: the kind then stays
  locked until :meth:`Throttle.unlock` (password reset or the helpdesk, B07).
  **Also**: one counter per authenticator ``kind``; :meth:`Throttle.record_success` resets only
  that kind, so a password success leaves the TOTP counter alone (keycloak#46164).
- **B02** counters are keyed by the canonical account: the caller passes
  :func:`account_key_for` of the user's immutable ``sub`` or, for an unknown account, of the
  identifier typed, canonicalised the same way the account look-up does. Known and unknown
  accounts lock alike, so a lock reveals nothing (B05).
- **B03** every read-decide-write is one Lua script, so it is atomic on Redis and fakeredis.
  :meth:`Throttle.check` *counts the attempt* as it allows it (an attempt is a failure until
  proven otherwise), so 50 concurrent attempts against a limit of 10 let exactly 10 through.
  :meth:`Throttle.record_failure` then confirms it and :meth:`Throttle.record_success` clears it.
- **B06** :func:`ip_key` never skips a policy: an unparsable or missing address is one shared
  bucket. IPv6 addresses are limited per /64, which one client can otherwise rotate through.
- **B07** locks expire after one window, and :meth:`Throttle.unlock` clears every kind (called
  by a completed password reset and by the helpdesk). Documented limits: this module.
- **C01 Also** :class:`RateLimiter` (a sliding window) caps forgot-password requests per
  account and per IP: the sixth in 15 minutes is refused.

Expiry decisions use explicit millisecond timestamps from the injected clock, passed into the
scripts; Redis key TTLs (on Redis's own clock) only collect garbage.

Storage: one hash per account, ``thr:<account key>``, with fields ``<kind>:<name>``:
``n`` failures in the current window, ``ws`` window start, ``c`` consecutive failures,
``last`` last attempt, ``lu`` locked until (-1: until unlocked), ``p`` attempts allowed but not
yet resolved, ``ann`` whether the current lock has been reported. Rate limits are sorted sets,
``rl:<key>``, of the hits inside the window.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flask import Flask, current_app

from idp.config import Settings
from idp.services.users import InvalidEmail, canonical_email
from idp.store import Store

Clock = Callable[[], float]

THROTTLE_PREFIX = "thr:"
RATE_PREFIX = "rl:"


class Kind(StrEnum):
    """Authenticator kinds, each with its own counter (B01 "Also"). Names, not secrets.

    Any lower-case name is accepted by the methods, so a new kind needs no change here.
    """

    PASSWORD = "password"  # noqa: S105
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    RESET_TOKEN = "reset_token"  # noqa: S105
    WEBAUTHN = "webauthn"


_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_FIELDS = ("n", "ws", "c", "last", "lu", "p", "ann")
UNTIL_UNLOCKED = -1


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DELAYED = "delayed"  # progressive delay: try again after retry_after
    LOCKED = "locked"  # too many failures in the window: locked for retry_after
    LOCKED_UNTIL_UNLOCKED = "locked_until_unlocked"  # the hard cap: reset or helpdesk only
    LIMITED = "limited"  # a rate limit: try again after retry_after


@dataclass(frozen=True, slots=True)
class Decision:
    """What the caller may do next.

    ``retry_after`` is in whole seconds (0 when allowed or locked until unlocked).
    ``newly_locked`` is true on exactly one :meth:`Throttle.record_failure` per lock, so the
    caller audits ``account.locked`` once. ``count`` is the failures (or hits) in the window.
    """

    outcome: Outcome
    retry_after: int = 0
    newly_locked: bool = False
    count: int = 0

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    @property
    def locked(self) -> bool:
        return self.outcome in (Outcome.LOCKED, Outcome.LOCKED_UNTIL_UNLOCKED)


@dataclass(frozen=True, slots=True)
class KindState:
    """One authenticator kind's counter, for the helpdesk page (times are epoch seconds)."""

    failures: int
    consecutive: int
    last_attempt: int | None
    locked: bool
    locked_until: int | None  # None when not locked, or locked until unlocked
    until_unlocked: bool


# -- keys ---------------------------------------------------------------------------------


def account_key_for(identifier: str, *, sub: str | None = None) -> str:
    """The counter key for an account (B02).

    Pass ``sub`` whenever the identifier resolved to an account, so every spelling of it
    (``Alice@School.uk``, ``alice@school.uk``) shares one counter. For an unknown account the
    identifier is canonicalised exactly as the account look-up does (trimmed, lower-cased
    email) and hashed, so unknown accounts lock just like known ones and no address is stored.
    """
    if sub:
        return "sub:" + sub
    try:
        canonical = canonical_email(identifier)
    except InvalidEmail:
        canonical = unicodedata.normalize("NFKC", identifier).strip().lower()
    return "id:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def ip_key(remote_addr: str | None) -> str:
    """The rate-limit key for a client address (B06): never empty, never skipped.

    ``remote_addr`` must already be the proxy-corrected address (``idp.web.requests`` trusts
    X-Forwarded-For only from the configured hops). IPv6 is grouped by /64.
    """
    try:
        address = ipaddress.ip_address((remote_addr or "").strip())
    except ValueError:
        return "ip:unparsable"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"


def _kind(kind: str) -> str:
    if not _KIND.fullmatch(kind):
        raise ValueError(f"unknown authenticator kind {kind!r}")
    return kind


def _seconds(ms: float) -> int:
    return max(0, math.ceil(ms / 1000))


# -- the scripts --------------------------------------------------------------------------
# KEYS: the account hash. ARGV: kind, now_ms, max_failures, window_ms, free_attempts,
# base_delay_ms, max_delay_ms, hard_limit, forget_seconds.
# Every script returns {verdict, wait_ms, newly_locked, failures_in_window}, verdict being
# 0 allowed, 1 delayed, 2 locked, 3 locked until unlocked.

_LUA_COMMON = """
local key, kind, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local max_failures, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local free, base, max_delay = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local hard, forget = tonumber(ARGV[8]), ARGV[9]
local names = {"n", "ws", "c", "last", "lu", "p", "ann"}
local fields = {}
for i, name in ipairs(names) do fields[i] = kind .. ":" .. name end
local values = redis.call("HMGET", key, unpack(fields))
local s = {}
for i, name in ipairs(names) do s[name] = tonumber(values[i]) or 0 end

-- An expired lock or an elapsed window starts a new window; consecutive failures remain.
if s.lu > 0 and s.lu <= now then s.lu = 0; s.n = 0; s.ws = 0; s.ann = 0 end
if s.ws > 0 and now - s.ws >= window then s.n = 0; s.ws = 0 end

local function verdict()
  if s.lu == -1 then return 3, 0 end
  if s.lu > now then return 2, s.lu - now end
  if s.c >= free then
    local wait = math.min(base * 2 ^ (s.c - free), max_delay)
    if now < s.last + wait then return 1, s.last + wait - now end
  end
  return 0, 0
end

local function count()
  if s.ws == 0 then s.ws = now end
  s.n = s.n + 1
  s.c = s.c + 1
  s.last = now
  if s.c >= hard then s.lu = -1; s.ann = 0
  elseif s.n >= max_failures then s.lu = now + window; s.ann = 0 end
end

local function save()
  local args = {}
  for i, name in ipairs(names) do
    args[#args + 1] = fields[i]
    args[#args + 1] = string.format("%d", s[name])
  end
  redis.call("HSET", key, unpack(args))
  redis.call("EXPIRE", key, forget)
end
"""

# Before evaluating a credential: refuse, or allow and count the attempt as a failure.
_CHECK = (
    _LUA_COMMON
    + """
local v, wait = verdict()
if v ~= 0 then return {v, wait, 0, s.n} end
count()
s.p = s.p + 1
save()
return {0, 0, 0, s.n}
"""
)

# The same, behind a sliding-window rate limit (sign-in: per IP, then per account) in one
# round trip. Extra KEYS[2]: the limit's sorted set; extra ARGV 10-13: as _HIT's ARGV 1-4.
# A refused limit returns verdict 4 and touches neither key further, so it costs the account
# nothing; otherwise the limit's hit is counted, then the account is checked exactly as _CHECK.
_CHECK_AFTER_LIMIT = (
    _LUA_COMMON
    + """
local rkey, rnow = KEYS[2], tonumber(ARGV[10])
local rlimit, rwindow = tonumber(ARGV[11]), tonumber(ARGV[12])
-- KEYS[3], when given, is only read (GET) and returned last: it rides this round trip.
local extra = false
if #KEYS >= 3 then extra = redis.call("GET", KEYS[3]) end
redis.call("ZREMRANGEBYSCORE", rkey, "-inf", string.format("%d", rnow - rwindow))
local hits = redis.call("ZCARD", rkey)
if hits >= rlimit then
  local oldest = redis.call("ZRANGE", rkey, 0, 0, "WITHSCORES")
  return {4, tonumber(oldest[2]) + rwindow - rnow, 0, hits, extra}
end
redis.call("ZADD", rkey, ARGV[10], ARGV[13])
redis.call("PEXPIRE", rkey, ARGV[12])
local v, wait = verdict()
if v ~= 0 then return {v, wait, 0, s.n, extra} end
count()
s.p = s.p + 1
save()
return {0, 0, 0, s.n, extra}
"""
)

# After a wrong credential: confirm the counted attempt (or count it, if check was skipped).
_FAILURE = (
    _LUA_COMMON
    + """
if s.p > 0 then
  s.p = s.p - 1
elseif verdict() < 2 then
  count()
end
local newly = 0
if (s.lu == -1 or s.lu > now) and s.ann == 0 then
  s.ann = 1
  newly = 1
end
save()
local v, wait = verdict()
return {v, wait, newly, s.n}
"""
)

# KEYS: the limit's sorted set. ARGV: now_ms, limit, window_ms, a unique member.
# Returns {allowed (0/1), wait_ms, hits in the window}.
_HIT = """
local key, now = KEYS[1], tonumber(ARGV[1])
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call("ZREMRANGEBYSCORE", key, "-inf", string.format("%d", now - window))
local hits = redis.call("ZCARD", key)
if hits >= limit then
  local oldest = redis.call("ZRANGE", key, 0, 0, "WITHSCORES")
  return {0, tonumber(oldest[2]) + window - now, hits}
end
redis.call("ZADD", key, ARGV[1], ARGV[4])
redis.call("PEXPIRE", key, ARGV[3])
return {1, 0, hits + 1}
"""

_VERDICTS = (
    Outcome.ALLOWED,
    Outcome.DELAYED,
    Outcome.LOCKED,
    Outcome.LOCKED_UNTIL_UNLOCKED,
    Outcome.LIMITED,
)


class Throttle:
    """Per-account, per-authenticator failure counters (B01-B03, B07).

    Use it the same way on every path that checks a credential (B04)::

        decision = throttle.check(key, Kind.TOTP)
        if not decision.allowed:
            ...  # refuse without evaluating the credential
        elif verify(code):
            throttle.record_success(key, Kind.TOTP)
        elif throttle.record_failure(key, Kind.TOTP).newly_locked:
            ...  # audit account.locked (once per lock)
    """

    def __init__(
        self,
        store: Store,
        *,
        max_failures: int,
        window_seconds: int,
        clock: Clock = time.time,
        free_attempts: int = 5,
        base_delay_seconds: float = 1.0,
        max_delay_seconds: int = 3600,
        hard_limit: int = 100,
        forget_after_seconds: int = 30 * 24 * 3600,
    ) -> None:
        if not 1 <= max_failures <= hard_limit <= 100:
            raise ValueError("need 1 <= max_failures <= hard_limit <= 100 (NIST SP 800-63B-4)")
        self.store = store
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.clock = clock
        self.free_attempts = free_attempts
        self.base_delay_seconds = base_delay_seconds
        self.max_delay_seconds = max_delay_seconds
        self.hard_limit = hard_limit
        self.forget_after_seconds = max(forget_after_seconds, window_seconds, max_delay_seconds)
        self._check = store.register_script(_CHECK)
        self._check_after_limit = store.register_script(_CHECK_AFTER_LIMIT)
        self._failure = store.register_script(_FAILURE)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    @staticmethod
    def _key(account_key: str) -> str:
        return THROTTLE_PREFIX + account_key

    def _run(
        self,
        script: Any,
        account_key: str,
        kind: str,
        *,
        now: int | None = None,
        extra_keys: tuple[str, ...] = (),
        extra_args: tuple[object, ...] = (),
    ) -> Decision:
        decision, _ = self._run_reading(
            script, account_key, kind, now=now, extra_keys=extra_keys, extra_args=extra_args
        )
        return decision

    def _run_reading(
        self,
        script: Any,
        account_key: str,
        kind: str,
        *,
        now: int | None = None,
        extra_keys: tuple[str, ...] = (),
        extra_args: tuple[object, ...] = (),
    ) -> tuple[Decision, Any]:
        """:meth:`_run`, also returning the script's optional fifth reply (None if absent)."""
        now = self._now_ms() if now is None else now
        verdict, wait_ms, newly, count, *rest = script(
            keys=[self._key(account_key), *extra_keys],
            args=[
                _kind(kind),
                now,
                self.max_failures,
                self.window_seconds * 1000,
                self.free_attempts,
                int(self.base_delay_seconds * 1000),
                self.max_delay_seconds * 1000,
                self.hard_limit,
                self.forget_after_seconds,
                *extra_args,
            ],
        )
        decision = Decision(
            outcome=_VERDICTS[int(verdict)],
            retry_after=_seconds(wait_ms),
            newly_locked=bool(newly),
            count=int(count),
        )
        return decision, (rest[0] if rest else None)

    def check(self, account_key: str, kind: str) -> Decision:
        """Call before evaluating a credential; evaluate it only if ``allowed`` (B01, B03).

        An allowed attempt is counted at once, atomically; resolve it with
        :meth:`record_success` or :meth:`record_failure`.
        """
        return self._run(self._check, account_key, kind)

    def check_after_limit(
        self, account_key: str, kind: str, *, limit_key: str, limit: int, window_seconds: int
    ) -> Decision:
        """:meth:`RateLimiter.hit` on ``limit_key``, then :meth:`check`, in one round trip.

        The sign-in POST's first store call (issue 3: every round trip counts against the
        1.2x argon2 budget). Both steps run in one Lua script, so this is as atomic as the two
        calls it replaces (B03). When the limit refuses, the outcome is ``LIMITED`` and the
        account's counter is untouched, exactly as if :meth:`check` had never been called.
        """
        decision, _ = self.check_after_limit_reading(
            account_key, kind, limit_key=limit_key, limit=limit, window_seconds=window_seconds
        )
        return decision

    def check_after_limit_reading(
        self,
        account_key: str,
        kind: str,
        *,
        limit_key: str,
        limit: int,
        window_seconds: int,
        read_key: str | None = None,
    ) -> tuple[Decision, bytes | None]:
        """:meth:`check_after_limit`, also returning the value at ``read_key`` (a plain GET).

        The sign-in POST reads its pending sign-in in the same round trip (issue 3). The read
        happens whatever the verdict, so the reply's shape and timing say nothing (B05).
        """
        if not limit_key:
            raise ValueError("a rate-limit key is required: never skip the limit (B06)")
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window must be positive")
        now = self._now_ms()
        decision, value = self._run_reading(
            self._check_after_limit,
            account_key,
            kind,
            now=now,
            extra_keys=(RATE_PREFIX + limit_key,) + ((read_key,) if read_key else ()),
            extra_args=(now, limit, window_seconds * 1000, f"{now}:{secrets.token_hex(6)}"),
        )
        return decision, value

    def record_failure(self, account_key: str, kind: str) -> Decision:
        """The credential was wrong. Returns what the next attempt will meet.

        ``newly_locked`` is true once per lock, for the ``account.locked`` audit event.
        """
        return self._run(self._failure, account_key, kind)

    def record_success(self, account_key: str, kind: str, *, batch: Store | None = None) -> None:
        """The credential was right: forget this kind's failures, and only this kind's.

        With ``batch`` (a pipeline the caller executes), the write is queued there, so it can
        share a round trip with the caller's own writes. Until it runs, the attempt stays
        counted as a failure: a delay errs towards refusing, never towards allowing (B03).
        """
        kind = _kind(kind)
        store = self.store if batch is None else batch
        store.hdel(self._key(account_key), *(f"{kind}:{name}" for name in _FIELDS))

    def unlock(self, account_key: str) -> bool:
        """Clear every kind's counter and lock (password reset, helpdesk; B07).

        Returns whether there was anything to clear.
        """
        return bool(self.store.delete(self._key(account_key)))

    def lock_state(self, account_key: str) -> dict[str, KindState]:
        """Every kind with a counter, for the helpdesk page."""
        raw = self.store.hgetall(self._key(account_key))
        by_kind: dict[str, dict[str, int]] = {}
        for name, value in raw.items():
            text = name.decode() if isinstance(name, bytes) else str(name)
            kind, _, field = text.rpartition(":")
            by_kind.setdefault(kind, {})[field] = int(value)
        now = self._now_ms()
        window = self.window_seconds * 1000
        states: dict[str, KindState] = {}
        for kind, s in sorted(by_kind.items()):
            locked_until, ws, n = s.get("lu", 0), s.get("ws", 0), s.get("n", 0)
            if 0 < locked_until <= now or (ws and now - ws >= window):
                n = 0  # as the scripts see it: the window or the lock is over
            until_unlocked = locked_until == UNTIL_UNLOCKED
            locked = until_unlocked or locked_until > now
            last = s.get("last", 0)
            states[kind] = KindState(
                failures=n,
                consecutive=s.get("c", 0),
                last_attempt=last // 1000 if last else None,
                locked=locked,
                locked_until=_seconds(locked_until) if locked and not until_unlocked else None,
                until_unlocked=until_unlocked,
            )
        return states

    def is_locked(self, account_key: str) -> bool:
        """Whether any kind is locked (delays do not count as locks)."""
        return any(state.locked for state in self.lock_state(account_key).values())


class RateLimiter:
    """A sliding-window limit on anything: sign-ins per IP, reset emails per account (C01)."""

    def __init__(self, store: Store, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock
        self._hit = store.register_script(_HIT)

    def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        """Count one event for ``key`` unless ``limit`` events already fell in the window.

        ``key`` names the policy and the subject, e.g. ``"forgot:" + account_key_for(email)``
        or ``"forgot:" + ip_key(addr)``; keep addresses and emails out of it (hash them).
        A refused event is not counted, so steady hammering gets ``limit`` per window.
        """
        if not key:
            raise ValueError("a rate-limit key is required: never skip the limit (B06)")
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window must be positive")
        now = int(self.clock() * 1000)
        allowed, wait_ms, hits = self._hit(
            keys=[RATE_PREFIX + key],
            args=[now, limit, window_seconds * 1000, f"{now}:{secrets.token_hex(6)}"],
        )
        return Decision(
            outcome=Outcome.ALLOWED if allowed else Outcome.LIMITED,
            retry_after=_seconds(wait_ms),
            count=int(hits),
        )

    def reset(self, key: str) -> None:
        self.store.delete(RATE_PREFIX + key)


# -- application wiring -------------------------------------------------------------------


def init_app(app: Flask, settings: Settings) -> None:
    """Put the throttle and the rate limiter on the app. Call after ``store.init_app``."""
    store = app.extensions["store"]
    app.extensions["throttle"] = Throttle(
        store,
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_failure_window_seconds,
    )
    app.extensions["rate_limiter"] = RateLimiter(store)


def get_throttle() -> Throttle:
    throttle: Throttle = current_app.extensions["throttle"]
    return throttle


def get_rate_limiter() -> RateLimiter:
    limiter: RateLimiter = current_app.extensions["rate_limiter"]
    return limiter
