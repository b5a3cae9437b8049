"""SSO sessions at the provider: server-side, in Redis, keyed by a hash of the cookie value.

Checklist items (``../shared/reference/security-requirements.md`` §E) and how they are met:

- **E01** (new session id at every authentication): :meth:`SsoSessions.create` makes a fresh
  cookie value; :meth:`SsoSessions.rotate` and :meth:`SsoSessions.reauthenticate` move the
  session to a new cookie value in one Lua script, so the old value is dead the moment the new
  one exists. The public ``sid`` stays the same, because relying services hold it in ID Tokens
  and back-channel logout names it (OIDC Back-Channel Logout 1.0 §2.1, ``sid`` claim).
- **E02** (>= 128 bits from a CSPRNG, validated server-side): the cookie value is
  ``secrets.token_urlsafe(32)`` (256 bits). Redis holds only its SHA-256, so a dump or a
  ``MONITOR`` of Redis yields no usable cookie.
- **E04** (idle <= 1 h, absolute <= 24 h; activity resets idle only, reauthentication both):
  :meth:`SsoSessions.get` checks both limits against explicit timestamps from the injected
  clock inside the Lua script; Redis key TTLs (the smaller of the idle time and the remaining
  absolute lifetime) only collect garbage. The absolute lifetime runs from ``auth_time``, the
  last (re)authentication (NIST SP 800-63B-4 §2.2.3, §5.2).
- **K01** (helpdesk staff get shorter timeouts): a session may carry its own, shorter limits
  (``idle_limit``/``absolute_limit``, written when a staff member signs in with
  ``staff=True``). Every check, in Python and in the Lua scripts, uses the smaller of the
  store's limits and the session's own, so a per-session limit can only ever shorten a session.
- **E06** (users list and end their own sessions; helpdesk ends all): a per-user index (a Redis
  hash of session-key digest to ``sid``) backs :meth:`list_for_user`, :meth:`end_by_sid` and
  :meth:`end_all_for_user`. Stale index entries are removed lazily when the index is read.

Storage (DESIGN.md §8 "an idle SSO session costs under 1 KB in Redis"): one Redis string per
session, a versioned record of unit-separator (``\\x1f``) delimited fields that the Lua scripts
can read and update without a JSON library. A Redis hash would switch to its much larger
``hashtable`` encoding as soon as one value (a user agent) exceeded 64 bytes.

    sso:s:<digest>  ->  "1" sid sub auth_time amr acr created_at last_seen services ip user_agent
                        [idle_limit absolute_limit]   (staff sessions only, K01)
    sso:u:<sub>     ->  hash {<digest>: <sid>}      (the user's sessions)

``<digest>`` is the unpadded base64url SHA-256 of the cookie value (43 characters: shorter than
hex, which matters twice per session). The scripts assume one Redis (standalone or Sentinel):
a session key and its user's index may sit in different Redis Cluster slots.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from idp.config import Settings
from idp.store import Store

Clock = Callable[[], float]

SESSION_PREFIX = "sso:s:"
USER_INDEX_PREFIX = "sso:u:"
#: Every session's digest, scored by when it expires if nothing more happens (I04: the worker
#: finds the sessions that expired silently and sends their back-channel logout).
EXPIRY_INDEX = "sso:expiry"
#: An expired record is kept this long past its expiry so the worker can announce it. It is
#: dead to every read (the scripts compare times); only the worker's sweep deletes it.
EXPIRED_GRACE_SECONDS = 6 * 3600
RECORD_VERSION = "1"
SEPARATOR = "\x1f"
USER_AGENT_MAX = 200
IP_MAX = 45  # the longest textual IPv6 address
COOKIE_VALUE_MAX = 128  # anything longer was not made by us; refuse before hashing it
INDEX_PRUNE_AT = 16  # a user index this long is cleaned of ended sessions at sign-in
TOKEN_MAX = 255  # sub, sid, amr values, acr and client ids (OIDC Core §2: sub <= 255 ASCII)

# Printable ASCII without spaces: safe as a record field and as a space-joined list item.
_TOKEN = re.compile(rf"[\x21-\x7e]{{1,{TOKEN_MAX}}}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class SessionNotFound(LookupError):
    """The session does not exist, has expired or was ended (the caller should sign in again)."""


@dataclass
class SsoSession:
    """One signed-in browser. Holds no secret: the cookie value is never stored (E02)."""

    sid: str
    sub: str
    auth_time: int
    amr: list[str]
    acr: str | None
    created_at: int
    last_seen: int
    services: list[str] = field(default_factory=list)
    ip: str | None = None
    user_agent: str | None = None
    #: The session's own, shorter limits (helpdesk staff, K01); None: the store's limits.
    idle_limit: int | None = None
    absolute_limit: int | None = None

    def limits(self, idle: int, absolute: int) -> tuple[int, int]:
        """The limits that apply: the store's, shortened by the session's own if it has any."""
        if self.idle_limit is not None:
            idle = min(idle, self.idle_limit)
        if self.absolute_limit is not None:
            absolute = min(absolute, self.absolute_limit)
        return idle, absolute

    def is_expired(self, now: float, idle: int, absolute: int) -> bool:
        """E04: idle since ``last_seen``, or older than ``absolute`` since ``auth_time``."""
        idle, absolute = self.limits(idle, absolute)
        return now - self.last_seen >= idle or now - self.auth_time >= absolute

    def expires_at(self, idle: int, absolute: int) -> int:
        """When the session ends if there is no further activity (for the account page)."""
        idle, absolute = self.limits(idle, absolute)
        return min(self.last_seen + idle, self.auth_time + absolute)


# -- the record ------------------------------------------------------------------------


def _digest(cookie_value: str) -> str:
    raw = hashlib.sha256(cookie_value.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(value: str, what: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} must be 1-{TOKEN_MAX} printable ASCII characters, no spaces")
    return value


def _text(value: str | None, limit: int) -> str:
    """Free text from the request (user agent, address): printable ASCII, truncated."""
    return _UNPRINTABLE.sub("?", value or "")[:limit]


def _encode(s: SsoSession) -> str:
    fields = [
        RECORD_VERSION,
        s.sid,
        s.sub,
        str(s.auth_time),
        " ".join(s.amr),
        s.acr or "",
        str(s.created_at),
        str(s.last_seen),
        " ".join(s.services),
        s.ip or "",
        s.user_agent or "",
    ]
    if s.idle_limit is not None and s.absolute_limit is not None:
        fields += [str(s.idle_limit), str(s.absolute_limit)]
    return SEPARATOR.join(fields)


def _decode(raw: bytes | str | None) -> SsoSession | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split(SEPARATOR)
    if len(parts) not in (11, 13) or parts[0] != RECORD_VERSION:
        return None  # an unknown record version is treated as no session: sign in again
    _, sid, sub, auth_time, amr, acr, created, last_seen, services, ip, user_agent = parts[:11]
    idle_limit, absolute_limit = (
        (int(parts[11]), int(parts[12])) if len(parts) == 13 else (None, None)
    )
    return SsoSession(
        sid=sid,
        sub=sub,
        auth_time=int(auth_time),
        amr=amr.split(),
        acr=acr or None,
        created_at=int(created),
        last_seen=int(last_seen),
        services=services.split(),
        ip=ip or None,
        user_agent=user_agent or None,
        idle_limit=idle_limit,
        absolute_limit=absolute_limit,
    )


# -- the scripts -------------------------------------------------------------------------
# Field positions (1-based, as Lua sees them): 2 sid, 3 sub, 4 auth_time, 5 amr, 6 acr,
# 7 created_at, 8 last_seen, 9 services, and for staff sessions 12 idle and 13 absolute
# limits (K01), which shorten the store's. Times are whole seconds from the injected clock.

_LUA_COMMON = """
local GRACE = @GRACE@
local function split(s)
  local t, i = {}, 1
  while true do
    local j = string.find(s, "\\31", i, true)
    if not j then t[#t + 1] = string.sub(s, i); return t end
    t[#t + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
local function limits(f, idle, absolute)
  if f[13] then
    return math.min(idle, tonumber(f[12])), math.min(absolute, tonumber(f[13]))
  end
  return idle, absolute
end
local function expired(f, now, idle, absolute)
  idle, absolute = limits(f, idle, absolute)
  return now - tonumber(f[8]) >= idle or now - tonumber(f[4]) >= absolute
end
local function expires_at(f, idle, absolute)
  idle, absolute = limits(f, idle, absolute)
  return math.min(tonumber(f[8]) + idle, tonumber(f[4]) + absolute)
end
local function ttl(f, now, idle, absolute)
  return tostring(expires_at(f, idle, absolute) - now + GRACE)
end
""".replace("@GRACE@", str(EXPIRED_GRACE_SECONDS))

# KEYS: session, expiry index. ARGV: now, idle, absolute, touch_every, digest.
# Returns nil (no session), {0, record} (expired: left for the worker's sweep, I04) or
# {1, record} (live).
_GET = (
    _LUA_COMMON
    + """
local raw = redis.call("GET", KEYS[1])
if not raw then return nil end
local now, idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local f = split(raw)
if expired(f, now, idle, absolute) then return {0, raw} end
if now - tonumber(f[8]) >= tonumber(ARGV[4]) then
  f[8] = ARGV[1]
  raw = table.concat(f, "\\31")
  redis.call("SET", KEYS[1], raw, "EX", ttl(f, now, idle, absolute))
  redis.call("ZADD", KEYS[2], expires_at(f, idle, absolute), ARGV[5])
end
return {1, raw}
"""
)

# KEYS: session. ARGV: now, idle, absolute, client_id. Returns the record, or nil.
_ADD_SERVICE = (
    _LUA_COMMON
    + """
local raw = redis.call("GET", KEYS[1])
if not raw then return nil end
local now, idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local f = split(raw)
if expired(f, now, idle, absolute) then return nil end
for item in string.gmatch(f[9], "%S+") do
  if item == ARGV[4] then return raw end
end
if f[9] == "" then f[9] = ARGV[4] else f[9] = f[9] .. " " .. ARGV[4] end
raw = table.concat(f, "\\31")
redis.call("SET", KEYS[1], raw, "KEEPTTL")
return raw
"""
)

# Move a session to a new cookie value (E01), optionally recording a reauthentication.
# KEYS: old session, new session, user index, expiry index. ARGV: now, idle, absolute, sub,
# old digest, new digest, reauth ("1"/"0"), amr, acr, and optionally the staff idle and
# absolute limits to record (K01: set on reauthentication, never removed). Returns the new
# record, or nil. An
# expired session is not moved and not deleted: the worker's sweep announces it (I04).
_MOVE = (
    _LUA_COMMON
    + """
local raw = redis.call("GET", KEYS[1])
if not raw then return nil end
local now, idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local f = split(raw)
if f[3] ~= ARGV[4] then return nil end
if expired(f, now, idle, absolute) then return nil end
redis.call("DEL", KEYS[1])
redis.call("HDEL", KEYS[3], ARGV[5])
redis.call("ZREM", KEYS[4], ARGV[5])
if ARGV[7] == "1" then
  f[4] = ARGV[1]
  f[5] = ARGV[8]
  f[6] = ARGV[9]
  if ARGV[11] and ARGV[11] ~= "" then
    if f[13] then
      f[12] = tostring(math.min(tonumber(f[12]), tonumber(ARGV[10])))
      f[13] = tostring(math.min(tonumber(f[13]), tonumber(ARGV[11])))
    else
      f[12] = ARGV[10]
      f[13] = ARGV[11]
    end
  end
end
f[8] = ARGV[1]
raw = table.concat(f, "\\31")
redis.call("SET", KEYS[2], raw, "EX", ttl(f, now, idle, absolute))
redis.call("ZADD", KEYS[4], expires_at(f, idle, absolute), ARGV[6])
redis.call("HSET", KEYS[3], ARGV[6], f[2])
redis.call("EXPIRE", KEYS[3], ARGV[3])
return raw
"""
)

# Sign out one browser. KEYS: session, expiry index. ARGV: now, idle, absolute, digest.
# Returns nil (none, or expired: left for the sweep) or the record it deleted.
_END = (
    _LUA_COMMON
    + """
local raw = redis.call("GET", KEYS[1])
if not raw then
  redis.call("ZREM", KEYS[2], ARGV[4])
  return nil
end
local f = split(raw)
if expired(f, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])) then return nil end
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[4])
return raw
"""
)

# KEYS: session, user index, expiry index. ARGV: sub, digest, now, idle, absolute. Delete
# only if the session is that user's and live (an expired one is left for the sweep).
_END_OWN = (
    _LUA_COMMON
    + """
local raw = redis.call("GET", KEYS[1])
redis.call("HDEL", KEYS[2], ARGV[2])
if not raw then return nil end
local f = split(raw)
if f[3] ~= ARGV[1] then return nil end
if expired(f, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])) then return nil end
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[3], ARGV[2])
return raw
"""
)

# KEYS: user index, expiry index. ARGV: session key prefix, now, idle, absolute. Ends every
# live session in the index, atomically, so a concurrent rotate cannot slip a session past
# it. Expired ones are left for the sweep. Returns the live records it deleted.
_END_ALL = (
    _LUA_COMMON
    + """
local now, idle, absolute = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for _, digest in ipairs(redis.call("HKEYS", KEYS[1])) do
  local raw = redis.call("GET", ARGV[1] .. digest)
  if raw and not expired(split(raw), now, idle, absolute) then
    redis.call("DEL", ARGV[1] .. digest)
    redis.call("ZREM", KEYS[2], digest)
    out[#out + 1] = raw
  elseif not raw then
    redis.call("ZREM", KEYS[2], digest)
  end
end
redis.call("DEL", KEYS[1])
return out
"""
)

# The worker's sweep, second phase. KEYS: expiry index. ARGV: session key prefix, user index
# prefix, now, idle, absolute, digest... Deletes each session that is still expired (and its
# index entries); drops index entries of sessions already gone. Returns how many it deleted.
_FORGET_EXPIRED = (
    _LUA_COMMON
    + """
local now, idle, absolute = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local deleted = 0
for i = 6, #ARGV do
  local digest = ARGV[i]
  local raw = redis.call("GET", ARGV[1] .. digest)
  if not raw then
    redis.call("ZREM", KEYS[1], digest)
  else
    local f = split(raw)
    if expired(f, now, idle, absolute) then
      redis.call("DEL", ARGV[1] .. digest)
      redis.call("HDEL", ARGV[2] .. f[3], digest)
      redis.call("ZREM", KEYS[1], digest)
      deleted = deleted + 1
    end
  end
end
return deleted
"""
)


class SsoSessions:
    """The SSO session store. Dependencies are explicit so tests can move the clock."""

    def __init__(
        self,
        store: Store,
        *,
        idle_seconds: int,
        absolute_seconds: int,
        clock: Clock = time.time,
        touch_every_seconds: int | None = None,
        staff_idle_seconds: int | None = None,
        staff_absolute_seconds: int | None = None,
    ) -> None:
        if idle_seconds <= 0 or absolute_seconds <= 0:
            raise ValueError("session lifetimes must be positive")
        self.store = store
        self.idle = idle_seconds
        self.absolute = absolute_seconds
        # K01: helpdesk staff's limits, never longer than everyone else's.
        self.staff_idle = min(idle_seconds, staff_idle_seconds or idle_seconds)
        self.staff_absolute = min(absolute_seconds, staff_absolute_seconds or absolute_seconds)
        self.clock = clock
        # Throttle last_seen writes: at most one per minute per session (or a tenth of the idle
        # time, if shorter). A session may therefore idle out up to that much early; never late.
        self.touch_every = (
            touch_every_seconds
            if touch_every_seconds is not None
            else max(1, min(60, idle_seconds // 10))
        )
        self._get = store.register_script(_GET)
        self._add_service = store.register_script(_ADD_SERVICE)
        self._move = store.register_script(_MOVE)
        self._end_own = store.register_script(_END_OWN)
        self._end_all = store.register_script(_END_ALL)
        self._end = store.register_script(_END)
        self._forget_expired = store.register_script(_FORGET_EXPIRED)

    # -- keys ----------------------------------------------------------------------------

    @staticmethod
    def _key(digest: str) -> str:
        return SESSION_PREFIX + digest

    @staticmethod
    def _index(sub: str) -> str:
        return USER_INDEX_PREFIX + sub

    def _now(self) -> int:
        return int(self.clock())

    def _live(self, s: SsoSession | None, now: int) -> SsoSession | None:
        if s is None or s.is_expired(now, self.idle, self.absolute):
            return None
        return s

    # -- creating and reading ----------------------------------------------------------------

    def create(
        self,
        sub: str,
        *,
        amr: Sequence[str],
        acr: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        staff: bool = False,
    ) -> tuple[str, SsoSession]:
        """Start a session after a successful authentication (E01, E02).

        ``staff=True`` (a person with a helpdesk role) records the shorter staff limits in the
        session itself (K01), so they hold whatever the person's role later becomes.
        Returns the cookie value (give it to the browser; it is stored nowhere) and the session.
        """
        now = self._now()
        session = SsoSession(
            sid=secrets.token_urlsafe(16),
            sub=_token(sub, "sub"),
            auth_time=now,
            amr=[_token(m, "amr value") for m in amr],
            acr=_token(acr, "acr") if acr else None,
            created_at=now,
            last_seen=now,
            services=[],
            ip=_text(ip, IP_MAX) or None,
            user_agent=_text(user_agent, USER_AGENT_MAX) or None,
            idle_limit=self.staff_idle if staff else None,
            absolute_limit=self.staff_absolute if staff else None,
        )
        cookie_value = secrets.token_urlsafe(32)
        digest = _digest(cookie_value)
        index = self._index(sub)
        with self.store.pipeline(transaction=True) as pipe:
            pipe.hset(index, digest, session.sid)
            pipe.expire(index, self.absolute)
            lifetime = min(session.limits(self.idle, self.absolute))
            pipe.set(self._key(digest), _encode(session), ex=lifetime + EXPIRED_GRACE_SECONDS)
            pipe.zadd(EXPIRY_INDEX, {digest: now + lifetime})
            pipe.hlen(index)
            indexed = pipe.execute()[-1]
        if indexed > INDEX_PRUNE_AT:
            self._sessions_of(sub)  # drops the entries of sessions that have ended
        return cookie_value, session

    def get(self, cookie_value: str | None) -> SsoSession | None:
        """The live session for a cookie value, or None. Records activity (E04: idle only)."""
        if not cookie_value or len(cookie_value) > COOKIE_VALUE_MAX:
            return None
        now = self._now()
        digest = _digest(cookie_value)
        result = self._get(
            keys=[self._key(digest), EXPIRY_INDEX],
            args=[now, self.idle, self.absolute, self.touch_every, digest],
        )
        if result is None:
            return None
        live, raw = result
        session = _decode(raw)
        if not live:
            if session is not None:
                self.store.hdel(self._index(session.sub), digest)
            return None
        return session

    def list_for_user(self, sub: str) -> list[SsoSession]:
        """The user's live sessions, most recently used first (E06). Cleans the index."""
        return [s for _, s in self._sessions_of(sub)]

    def _sessions_of(self, sub: str) -> list[tuple[str, SsoSession]]:
        index = self._index(sub)
        digests = [d.decode() if isinstance(d, bytes) else d for d in self.store.hkeys(index)]
        if not digests:
            return []
        raws = self.store.mget([self._key(d) for d in digests])
        now = self._now()
        found: list[tuple[str, SsoSession]] = []
        stale: list[str] = []
        for digest, raw in zip(digests, raws, strict=True):
            session = self._live(_decode(raw), now)
            if session is None or session.sub != sub:
                stale.append(digest)
            else:
                found.append((digest, session))
        if stale:
            # Expired records stay until the worker's sweep has announced them (I04).
            self.store.hdel(index, *stale)
        found.sort(key=lambda pair: pair[1].last_seen, reverse=True)
        return found

    # -- changing ------------------------------------------------------------------------------

    def add_service(self, cookie_value: str, client_id: str) -> SsoSession:
        """Remember that this session signed in to ``client_id`` (for back-channel logout)."""
        now = self._now()
        raw = self._add_service(
            keys=[self._key(_digest(cookie_value))],
            args=[now, self.idle, self.absolute, _token(client_id, "client_id")],
        )
        session = _decode(raw)
        if session is None:
            raise SessionNotFound
        return session

    def rotate(self, cookie_value: str) -> str:
        """Move the session to a new cookie value; the old value stops working (E01)."""
        new_value, _ = self._move_to_new_value(cookie_value, None)
        return new_value

    def reauthenticate(
        self,
        cookie_value: str,
        amr: Sequence[str],
        acr: str | None = None,
        *,
        staff: bool = False,
    ) -> tuple[str, SsoSession]:
        """Record a fresh authentication (prompt=login, max_age, step-up).

        ``auth_time`` becomes now and ``amr``/``acr`` are replaced (pass every method the user
        has now satisfied, e.g. ``["pwd", "otp"]`` after a TOTP step-up). Both timers restart
        (E04), and the cookie value changes (E01: a new session id at every reauthentication),
        so this returns the new cookie value as well as the session. ``sid`` is unchanged.
        ``staff=True`` records the staff limits (K01), as :meth:`create` does.
        """
        amr_values = [_token(m, "amr value") for m in amr]
        return self._move_to_new_value(cookie_value, (amr_values, acr), staff=staff)

    def _move_to_new_value(
        self,
        cookie_value: str,
        reauth: tuple[list[str], str | None] | None,
        *,
        staff: bool = False,
    ) -> tuple[str, SsoSession]:
        old_digest = _digest(cookie_value)
        current = _decode(self.store.get(self._key(old_digest)))
        if current is None:
            raise SessionNotFound
        new_value = secrets.token_urlsafe(32)
        new_digest = _digest(new_value)
        amr, acr = reauth if reauth is not None else ([], None)
        raw = self._move(
            keys=[
                self._key(old_digest),
                self._key(new_digest),
                self._index(current.sub),
                EXPIRY_INDEX,
            ],
            args=[
                self._now(),
                self.idle,
                self.absolute,
                current.sub,
                old_digest,
                new_digest,
                "1" if reauth is not None else "0",
                " ".join(amr),
                _token(acr, "acr") if acr else "",
                self.staff_idle if staff else "",
                self.staff_absolute if staff else "",
            ],
        )
        session = _decode(raw)
        if session is None:
            raise SessionNotFound
        return new_value, session

    # -- ending ------------------------------------------------------------------------------

    def end(self, cookie_value: str) -> SsoSession | None:
        """End the session behind a cookie (sign out). Returns it if it was live.

        This takes the cookie value only, never a ``sid``: a ``sid`` is public (it is in ID
        Tokens) and a cookie that carried one must not be able to end someone's session. Use
        :meth:`end_by_sid` with the owner's ``sub`` for that.
        """
        if not cookie_value or len(cookie_value) > COOKIE_VALUE_MAX:
            return None
        digest = _digest(cookie_value)
        session = _decode(
            self._end(
                keys=[self._key(digest), EXPIRY_INDEX],
                args=[self._now(), self.idle, self.absolute, digest],
            )
        )
        if session is None:
            return None
        self.store.hdel(self._index(session.sub), digest)
        return session

    def end_by_sid(self, sub: str, sid: str) -> SsoSession | None:
        """End one of ``sub``'s own sessions by its public ``sid`` ("sign out of this device").

        Only the user's own index is searched, and the script re-checks the owner, so one user
        can never end another's session (E06).
        """
        for digest, session in self._sessions_of(sub):
            if session.sid == sid:
                raw = self._end_own(
                    keys=[self._key(digest), self._index(sub), EXPIRY_INDEX],
                    args=[sub, digest, self._now(), self.idle, self.absolute],
                )
                return _decode(raw)
        return None

    def end_all_for_user(self, sub: str) -> list[SsoSession]:
        """End every session of ``sub`` (password reset, deactivation, helpdesk; C06, E06).

        Returns the sessions that were live, for back-channel logout.
        """
        now = self._now()
        raws: list[Any] = self._end_all(
            keys=[self._index(sub), EXPIRY_INDEX],
            args=[SESSION_PREFIX, now, self.idle, self.absolute],
        )
        ended = [self._live(_decode(raw), now) for raw in raws]
        return [s for s in ended if s is not None and s.sub == sub]

    # -- expiry (the worker's sweep, I04) -----------------------------------------------------

    def expired_sessions(self, *, limit: int = 200) -> list[tuple[str, SsoSession]]:
        """Up to ``limit`` sessions that expired and that no one has ended, oldest first.

        Each comes with its digest, the handle :meth:`forget_expired` takes. Changes nothing
        but the expiry index: entries of sessions already gone are dropped, and a session used
        since its entry was written is re-scored.
        """
        now = self._now()
        raw_digests = self.store.zrangebyscore(EXPIRY_INDEX, "-inf", now, start=0, num=limit)
        digests = [d.decode() if isinstance(d, bytes) else str(d) for d in raw_digests]
        if not digests:
            return []
        raws = self.store.mget([self._key(d) for d in digests])
        found: list[tuple[str, SsoSession]] = []
        gone: list[str] = []
        rescore: dict[str, int] = {}
        for digest, raw in zip(digests, raws, strict=True):
            session = _decode(raw)
            if session is None:
                gone.append(digest)
            elif session.is_expired(now, self.idle, self.absolute):
                found.append((digest, session))
            else:
                rescore[digest] = session.expires_at(self.idle, self.absolute)
        if gone or rescore:
            with self.store.pipeline(transaction=False) as pipe:
                if gone:
                    pipe.zrem(EXPIRY_INDEX, *gone)
                if rescore:
                    pipe.zadd(EXPIRY_INDEX, rescore, xx=True)
                pipe.execute()
        return found

    def forget_expired(self, handles: Sequence[str]) -> int:
        """Delete the sessions :meth:`expired_sessions` gave, once they have been announced."""
        if not handles:
            return 0
        deleted: int = self._forget_expired(
            keys=[EXPIRY_INDEX],
            args=[
                SESSION_PREFIX,
                USER_INDEX_PREFIX,
                self._now(),
                self.idle,
                self.absolute,
                *handles,
            ],
        )
        return int(deleted)


# -- application wiring --------------------------------------------------------------------


def init_app(app: Flask, settings: Settings) -> None:
    """Put the session store on the app. Call after ``store.init_app``."""
    app.extensions["sso_sessions"] = SsoSessions(
        app.extensions["store"],
        idle_seconds=settings.session_idle_seconds,
        absolute_seconds=settings.session_absolute_seconds,
        staff_idle_seconds=settings.helpdesk_session_idle_seconds,
        staff_absolute_seconds=settings.helpdesk_session_absolute_seconds,
    )


def get_sso_sessions() -> SsoSessions:
    """The current app's session store."""
    sessions: SsoSessions = current_app.extensions["sso_sessions"]
    return sessions
