"""Signing keys for the tokens we issue: generation, rotation with overlap, and the key ring.

Implements (security-requirements.md):

- **H01**: asymmetric algorithms only. RS256 with 2048-bit RSA is always present (OIDC Core
  §15.1; conformance ``oidcc-idtoken-rs256``), plus ES256 (P-256) and EdDSA (Ed25519).
  ``none`` and HS* are not in :data:`SIGNING_ALGS`, so nothing here can sign or verify them.
- **H04** / OIDC Core §10.1.1: every key's ``kid`` is its RFC 7638 JWK thumbprint (SHA-256),
  unique by construction and by the ``signing_keys.kid`` constraint. The JWKS carries public
  members only: it is rebuilt from an allow-list of members per key type, never by deleting
  private ones. A key is published as ``next`` at least ``key_publish_before_use_seconds``
  before :func:`rotate` lets it sign, and a ``retired`` key stays published until
  ``unpublish_after`` (rotation time + the longest token lifetime + leeway).
- **L02**: :meth:`KeyRing.verification_keys` hands out an explicit key set *and* an explicit
  algorithm allow-list; :meth:`KeyRing.decode_own_token` uses both.
- CONVENTIONS 3: every key is a list. Sign with the newest active key; verify with all
  published keys.
- DESIGN §3: private parts are encrypted at rest with ``crypto.encrypt(context="signing-key")``;
  a database dump without the key-encryption keys yields no usable private key.

Lifecycle, per algorithm::

    next (published, never signs) ──rotate──► active (signs) ──rotate──► retired
        (published until unpublish_after) ──prune──► deleted

Changes (:func:`ensure_keys`, :func:`rotate`, :func:`prune`) run in their own short
transaction on a separate session, serialised across processes by a PostgreSQL advisory lock,
so they never commit a caller's half-done work. Each change sets a new random "keys version"
in the store; every process's :class:`KeyRing` compares that one value per use and re-reads the
table only when it differs (or every few minutes, in case a change could not reach the store).
Importing a private RSA key costs tens of milliseconds, so imported keys are kept by kid for
the life of the process and only new kids are imported.

EdDSA: RFC 9864 deprecates the polymorphic ``EdDSA`` identifier in favour of ``Ed25519`` and
joserfc warns on every use. We keep ``EdDSA`` because that is the name OIDC relying parties and
discovery documents use today, and we remove the ambiguity it was deprecated for by only ever
pairing it with Ed25519 keys. Pass :func:`jws_registry` to joserfc to sign or verify with it.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from flask import current_app
from joserfc import jwt
from joserfc.jwk import ECKey, Key, KeyParameters, KeySet, OKPKey, RSAKey, import_key
from joserfc.jws import JWSRegistry
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from idp.config import Settings
from idp.extensions import db
from idp.logging import AUDIT
from idp.models.audit import AuditEvent
from idp.models.base import utcnow
from idp.models.keys import KeyState, SigningKey
from idp.models.service import Service
from idp.services import crypto

# Every algorithm we sign with, in order of preference (RS256 first: OIDC requires it). The
# service registry owns the list, because it decides what a service may register.
from idp.services.clients import SIGNING_ALGS as SIGNING_ALGS
from idp.store import claim_version, publish_version, read_version, register_version_key

log = logging.getLogger(__name__)
audit_log = logging.getLogger("idp.audit")

DEFAULT_ALG: Final = "RS256"
#: Associated data bound into every encrypted private key.
CRYPTO_CONTEXT: Final = "signing-key"
#: Added to the longest token lifetime before a retired key leaves the JWKS (clock skew,
#: tokens in flight, relying services' JWKS caches).
RETIREMENT_LEEWAY: Final = timedelta(minutes=5)
#: No signed token we issue lives longer than this floor (G07: access tokens ≤ 15 min; H02: ID
#: tokens ≤ 10 min; I04: logout tokens ≤ 2 min), and an ID token presented as id_token_hint
#: at logout (I01, expiry allowed) keeps verifying for at least this long after rotation.
TOKEN_LIFETIME_FLOOR: Final = timedelta(hours=1)
#: The store key whose value changes whenever the signing_keys table changes.
VERSION_KEY: Final = "idp:oidc:signing-keys:version"
#: A key ring re-reads the table at least this often even if the version never changes.
RECHECK_SECONDS: Final = 300.0
register_version_key(VERSION_KEY)  # read with the others, once per request

_KTY: Final = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
# The only members a published key may carry (RFC 7517 §4, RFC 7518 §6.2.1/§6.3.1, RFC 8037 §2).
_PUBLIC_MEMBERS: Final = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
_STATE_ORDER: Final = {KeyState.ACTIVE: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
# An arbitrary, fixed 63-bit number naming our PostgreSQL advisory lock.
_ADVISORY_LOCK_ID: Final = 0x5EC0_AC55_0001


class SigningKeyError(RuntimeError):
    """Base class for signing-key problems."""


class UnsupportedAlgorithm(SigningKeyError, ValueError):
    """An algorithm outside :data:`SIGNING_ALGS` was asked for."""


class NoSigningKey(SigningKeyError):
    """There is no active key for the algorithm, and none could be created."""


class KeyIntegrityError(SigningKeyError):
    """A stored private key does not match its kid (tampering, or swapped ciphertexts)."""


def _quiet_eddsa() -> Any:
    model = copy.copy(JWSRegistry.algorithms["EdDSA"])
    model.security_warning = None  # see the module docstring: Ed25519 keys only
    return model


class SigningAlgorithms(JWSRegistry):
    """A joserfc JWS registry that knows our three algorithms and nothing else.

    Build it with an explicit ``algorithms`` allow-list (:func:`jws_registry`); without one it
    allows nothing, because ``recommended`` is empty.
    """

    algorithms = {
        "RS256": JWSRegistry.algorithms["RS256"],
        "ES256": JWSRegistry.algorithms["ES256"],
        "EdDSA": _quiet_eddsa(),
    }
    recommended: list[str] = []


def jws_registry(algorithms: Collection[str] = SIGNING_ALGS) -> JWSRegistry:
    """A registry allowing exactly ``algorithms`` (each must be in :data:`SIGNING_ALGS`)."""
    allowed = tuple(algorithms)
    for alg in allowed:
        check_alg(alg)
    return SigningAlgorithms(algorithms=allowed)


def check_alg(alg: str) -> str:
    if alg not in SIGNING_ALGS:
        raise UnsupportedAlgorithm(
            f"unsupported signing algorithm {alg!r}; use one of {SIGNING_ALGS}"
        )
    return alg


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


# -- generating and storing keys -------------------------------------------------------------


def _new_jwk(alg: str) -> Key:
    params: KeyParameters = {"alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(2048, params, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", params, private=True)
    return OKPKey.generate_key("Ed25519", params, private=True)


def public_jwk(data: dict[str, Any], *, kid: str, alg: str) -> dict[str, Any]:
    """The publishable form of a key: kty, its public members, kid, alg and use; nothing else."""
    kty = _KTY[check_alg(alg)]
    if data.get("kty") != kty:
        raise KeyIntegrityError(f"key {kid} is not a {kty} key")
    public: dict[str, Any] = {"kty": kty}
    for member in _PUBLIC_MEMBERS[kty]:
        public[member] = data[member]
    public.update(kid=kid, alg=alg, use="sig")
    return public


def generate_key(
    alg: str,
    state: KeyState | str,
    *,
    now: datetime | None = None,
    session: Session | None = None,
) -> SigningKey:
    """Create a key pair, encrypt its private part and add the row to ``session`` (flushed).

    The caller commits (and then calls :func:`keys_changed`); :func:`ensure_keys` and
    :func:`rotate` do both for you.
    """
    check_alg(alg)
    state = KeyState(state)
    now = now or utcnow()
    jwk = _new_jwk(alg)
    kid = jwk.thumbprint()  # RFC 7638, SHA-256
    private = {**jwk.as_dict(private=True), "kid": kid}
    row = SigningKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=public_jwk(jwk.as_dict(private=False), kid=kid, alg=alg),
        private_key_ciphertext=crypto.encrypt(
            json.dumps(private, separators=(",", ":")).encode(), context=CRYPTO_CONTEXT
        ),
        created_at=now,
        activated_at=now if state is KeyState.ACTIVE else None,
    )
    target = session or db.session
    target.add(row)
    target.flush()
    return row


def load_private_key(row_kid: str, ciphertext: str) -> Key:
    """Decrypt and import a stored private key, checking it is the key its kid names."""
    data = json.loads(crypto.decrypt(ciphertext, context=CRYPTO_CONTEXT))
    key = import_key(data)
    if key.thumbprint() != row_kid or not key.is_private:
        raise KeyIntegrityError(f"stored private key does not match kid {row_kid}")
    return key


# -- changing the set of keys ----------------------------------------------------------------


@contextmanager
def _key_transaction() -> Iterator[Session]:
    """A short transaction on its own session, serialised across processes on PostgreSQL.

    SQLite serves one process on one machine (DESIGN §2); there a race between two first
    starts can at worst leave two active keys for an algorithm, which is harmless: both are
    published, and every process signs with the same one (the newest).
    """
    with Session(db.engine, expire_on_commit=False) as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
        yield session


def _audit(session: Session, event: str, *, actor: str, kid: str, **details: Any) -> None:
    # audit.record writes to db.session; key changes commit on their own session, so the row
    # is written here, in the same transaction as the change it records.
    session.add(
        AuditEvent(
            event=event,
            outcome="success",
            actor_id=actor,
            target_type="signing_key",
            target_id=kid,
            details=details,
        )
    )
    audit_log.log(
        AUDIT,
        "%s success actor=%s target=%s",
        event,
        actor,
        kid,
        extra={
            "audit": {
                "event": event,
                "outcome": "success",
                "actor": actor,
                "target": kid,
                "target_type": "signing_key",
                "details": details,
            }
        },
    )


def keys_changed() -> None:
    """Tell every process's key ring that the signing_keys table changed (call after commit)."""
    if not publish_version(VERSION_KEY):
        log.warning(
            "could not publish the signing-keys version; key rings refresh within %ss",
            RECHECK_SECONDS,
        )


def ensure_keys(
    algs: Iterable[str] = SIGNING_ALGS, *, now: datetime | None = None, actor: str = "system"
) -> list[str]:
    """Make sure every algorithm has an ``active`` and a ``next`` key; return the new kids.

    Idempotent, and safe when several processes start at once: on PostgreSQL the advisory
    lock makes the second wait and then find the first's keys; a kid collision (the unique
    constraint) or a write conflict is retried, and the retry finds the keys already there.
    Having a ``next`` key from the start means the first :func:`rotate` can promote a key
    that has long been published.
    """
    wanted = [check_alg(a) for a in algs]
    for attempt in range(3):
        created: list[str] = []
        try:
            with _key_transaction() as session:
                at = now or utcnow()
                have = {
                    (alg, state)
                    for alg, state in session.execute(
                        select(SigningKey.alg, SigningKey.state).where(
                            SigningKey.alg.in_(wanted),
                            SigningKey.state.in_([KeyState.ACTIVE, KeyState.NEXT]),
                        )
                    )
                }
                for alg in wanted:
                    for state in (KeyState.ACTIVE, KeyState.NEXT):
                        if (alg, state) not in have:
                            row = generate_key(alg, state, now=at, session=session)
                            _audit(
                                session,
                                "signing_key.created",
                                actor=actor,
                                kid=row.kid,
                                alg=alg,
                                state=state.value,
                            )
                            created.append(row.kid)
        except (IntegrityError, OperationalError):
            # A kid collision, or (SQLite) another process committed keys first: look again.
            if attempt == 2:
                raise
            continue
        if created:
            keys_changed()
        return created
    return []  # pragma: no cover - the loop returns or raises


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate` did."""

    alg: str
    #: The kid that signs from now on, or None if the next key has not been published long
    #: enough yet (see ``ready_at``).
    activated: str | None
    retired: tuple[str, ...]
    #: The key now waiting, published, to sign after the next rotation.
    next_kid: str
    #: When the waiting key may be promoted, if this rotation could not promote it.
    ready_at: datetime | None
    unpublish_after: datetime | None


def max_token_lifetime(session: Session) -> timedelta:
    """The longest lifetime of any token we sign, over every service, never under the floor."""
    id_max, access_max = session.execute(
        select(func.max(Service.id_token_lifetime), func.max(Service.access_token_lifetime))
    ).one()
    seconds = max(int(v) for v in (id_max, access_max, 0) if v is not None)
    return max(TOKEN_LIFETIME_FLOOR, timedelta(seconds=seconds))


def rotate(
    alg: str = DEFAULT_ALG,
    *,
    now: datetime | None = None,
    force: bool = False,
    actor: str = "system",
) -> Rotation:
    """Rotate the signing key for ``alg`` with overlap (H04; OIDC Core §10.1.1).

    The oldest ``next`` key (created and published now if there is none) becomes ``active``;
    the old active key becomes ``retired``, published until every token it signed has expired;
    a fresh ``next`` key is published for the rotation after this one. A next key that has
    been published for less than ``key_publish_before_use_seconds`` is not promoted, because a
    relying service may not have fetched it yet: the result says when it will be ready.
    ``force`` promotes it anyway (an emergency, e.g. a leaked key).
    """
    check_alg(alg)
    at = now or utcnow()
    publish_for = timedelta(seconds=_settings().key_publish_before_use_seconds)
    with _key_transaction() as session:
        rows = session.scalars(
            select(SigningKey)
            .where(SigningKey.alg == alg, SigningKey.state != KeyState.RETIRED)
            .order_by(SigningKey.created_at, SigningKey.id)
        ).all()
        waiting = [r for r in rows if r.state is KeyState.NEXT]
        actives = [r for r in rows if r.state is KeyState.ACTIVE]
        changed = not waiting
        if waiting:
            candidate = waiting[0]
        else:
            candidate = generate_key(alg, KeyState.NEXT, now=at, session=session)
            _audit(
                session,
                "signing_key.created",
                actor=actor,
                kid=candidate.kid,
                alg=alg,
                state=KeyState.NEXT.value,
            )
        ready_at = candidate.created_at + publish_for
        if at < ready_at and not force:
            result = Rotation(alg, None, (), candidate.kid, ready_at, None)
        else:
            unpublish_after = at + max_token_lifetime(session) + RETIREMENT_LEEWAY
            for old in actives:
                old.state = KeyState.RETIRED
                old.retired_at = at
                old.unpublish_after = unpublish_after
            candidate.state = KeyState.ACTIVE
            candidate.activated_at = at
            fresh = generate_key(alg, KeyState.NEXT, now=at, session=session)
            _audit(
                session,
                "signing_key.rotated",
                actor=actor,
                kid=candidate.kid,
                alg=alg,
                retired=[old.kid for old in actives],
                next=fresh.kid,
                forced=bool(force and at < ready_at),
                unpublish_after=unpublish_after.isoformat(),
            )
            result = Rotation(
                alg, candidate.kid, tuple(o.kid for o in actives), fresh.kid, None, unpublish_after
            )
            changed = True
    if changed:
        keys_changed()
    return result


def prune(now: datetime | None = None, *, actor: str = "system") -> list[str]:
    """Delete retired keys whose ``unpublish_after`` has passed; return their kids."""
    at = now or utcnow()
    with _key_transaction() as session:
        rows = session.scalars(
            select(SigningKey).where(
                SigningKey.state == KeyState.RETIRED,
                SigningKey.unpublish_after.is_not(None),
                SigningKey.unpublish_after <= at,
            )
        ).all()
        for row in rows:
            _audit(session, "signing_key.pruned", actor=actor, kid=row.kid, alg=row.alg)
            session.delete(row)
        kids = [row.kid for row in rows]
    if kids:
        keys_changed()
    return kids


# -- the key ring: what each process signs and verifies with ---------------------------------


@dataclass(frozen=True)
class _Entry:
    id: int
    kid: str
    alg: str
    state: KeyState
    created_at: datetime
    activated_at: datetime | None
    unpublish_after: datetime | None
    jwk: dict[str, Any]

    def published(self, now: datetime) -> bool:
        return self.state is not KeyState.RETIRED or (
            self.unpublish_after is not None and now < self.unpublish_after
        )

    def sort_key(self) -> tuple[int, int, float]:
        return (
            SIGNING_ALGS.index(self.alg),
            _STATE_ORDER[self.state],
            -(self.activated_at or self.created_at).timestamp(),
        )


@dataclass(frozen=True)
class _Snapshot:
    version: str | None
    checked_at: float
    entries: tuple[_Entry, ...]


@dataclass(frozen=True)
class VerificationKeys:
    """Everything a JWT decode of one of our own tokens needs, all explicit (L02)."""

    key_set: KeySet
    algorithms: tuple[str, ...]
    registry: JWSRegistry


class KeyRing:
    """The signing keys as imported joserfc keys, cached in this process.

    One per app (:func:`get_keyring`). Each use reads one value from the store (the keys
    version); the table is re-read only when it changed, and keys are imported once per kid.
    """

    def __init__(self, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._public: dict[str, Key] = {}
        self._private: dict[str, Key] = {}
        #: How many times this ring re-read the table (for tests and metrics).
        self.reloads = 0

    # The cache -------------------------------------------------------------------------------

    def _fresh(self, snapshot: _Snapshot | None, version: str | None) -> bool:
        return (
            snapshot is not None
            and version is not None
            and snapshot.version == version
            and time.monotonic() - snapshot.checked_at < self._recheck_seconds
        )

    def _current(self) -> _Snapshot:
        version = _read_version()
        snapshot = self._snapshot
        if snapshot is not None and self._fresh(snapshot, version):
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and self._fresh(snapshot, version):
                return snapshot
            return self._reload(version)

    def _reload(self, version: str | None) -> _Snapshot:
        # The version was read before the table: a change committed in between makes the
        # next use see a newer version and reload again, never keep a stale set.
        rows = db.session.execute(
            select(
                SigningKey.id,
                SigningKey.kid,
                SigningKey.alg,
                SigningKey.state,
                SigningKey.created_at,
                SigningKey.activated_at,
                SigningKey.unpublish_after,
                SigningKey.public_jwk,
            ).where(SigningKey.alg.in_(SIGNING_ALGS))
        ).all()
        entries = tuple(
            sorted(
                (
                    _Entry(
                        id=r.id,
                        kid=r.kid,
                        alg=r.alg,
                        state=r.state,
                        created_at=r.created_at,
                        activated_at=r.activated_at,
                        unpublish_after=r.unpublish_after,
                        jwk=public_jwk(r.public_jwk, kid=r.kid, alg=r.alg),
                    )
                    for r in rows
                ),
                key=_Entry.sort_key,
            )
        )
        for entry in entries:
            if entry.kid not in self._public:
                self._public[entry.kid] = import_key(entry.jwk)
        # Forget what is gone, and private keys that no longer sign.
        for kid in set(self._public) - {e.kid for e in entries}:
            del self._public[kid]
        for kid in set(self._private) - {e.kid for e in entries if e.state is KeyState.ACTIVE}:
            del self._private[kid]
        if version is None:
            version = claim_version(VERSION_KEY)
        snapshot = _Snapshot(version, time.monotonic(), entries)
        self._snapshot = snapshot
        self.reloads += 1
        return snapshot

    def invalidate(self) -> None:
        """Forget the cached set (the imported keys stay, by kid)."""
        self._snapshot = None

    # Signing ---------------------------------------------------------------------------------

    @staticmethod
    def _signer(snapshot: _Snapshot, alg: str) -> _Entry | None:
        # Entries are sorted newest-activated first, so this is the same key in every process.
        return next(
            (e for e in snapshot.entries if e.alg == alg and e.state is KeyState.ACTIVE), None
        )

    def signing_key(self, alg: str = DEFAULT_ALG) -> Key:
        """The private key that signs ``alg`` now, with its ``kid`` set.

        At first start there is none: the keys are created then (:func:`ensure_keys`).
        """
        check_alg(alg)
        entry = self._signer(self._current(), alg)
        if entry is None:
            ensure_keys()
            self.invalidate()
            entry = self._signer(self._current(), alg)
            if entry is None:
                raise NoSigningKey(f"no active {alg} signing key")
        key = self._private.get(entry.kid)
        if key is None:
            ciphertext = db.session.execute(
                select(SigningKey.private_key_ciphertext).where(SigningKey.kid == entry.kid)
            ).scalar_one()
            key = load_private_key(entry.kid, ciphertext)
            with self._lock:
                self._private[entry.kid] = key
        return key

    def sign(
        self,
        claims: dict[str, Any],
        *,
        alg: str = DEFAULT_ALG,
        typ: str = "JWT",
        header: dict[str, Any] | None = None,
    ) -> str:
        """A compact JWS of ``claims`` signed with the active ``alg`` key; the header has kid."""
        key = self.signing_key(alg)
        protected = {**(header or {}), "alg": alg, "kid": key.kid, "typ": typ}
        return jwt.encode(protected, claims, key, algorithms=[alg], registry=jws_registry([alg]))

    # Publishing and verifying ----------------------------------------------------------------

    def _published(self, now: datetime | None) -> list[_Entry]:
        snapshot = self._current()
        if not all(self._signer(snapshot, alg) for alg in SIGNING_ALGS):
            ensure_keys()
            self.invalidate()
            snapshot = self._current()
        at = now or utcnow()
        return [e for e in snapshot.entries if e.published(at)]

    def jwks(self, now: datetime | None = None) -> dict[str, Any]:
        """The public JWKS: next, active and not-yet-unpublished retired keys (H04)."""
        return {"keys": [dict(e.jwk) for e in self._published(now)]}

    def verification_keys(
        self, algorithms: Collection[str] | None = None, now: datetime | None = None
    ) -> VerificationKeys:
        """Our published public keys and the algorithm allow-list for checking our own tokens.

        ``next`` keys are included: they never sign, but a process that has just promoted one
        may sign with it before this process's cache has caught up.
        """
        allowed = tuple(algorithms) if algorithms is not None else SIGNING_ALGS
        registry = jws_registry(allowed)
        keys = [self._public[e.kid] for e in self._published(now) if e.alg in allowed]
        return VerificationKeys(KeySet(keys), allowed, registry)

    def decode_own_token(
        self, token: str, *, algorithms: Collection[str] | None = None
    ) -> jwt.Token:
        """Check the signature of a JWT we issued (header ``kid`` required); claims unchecked.

        Raises a ``joserfc.errors.JoseError`` subclass for an unknown kid, a disallowed
        algorithm (``none``, HS*, …) or a bad signature.
        """
        keys = self.verification_keys(algorithms)
        return jwt.decode(token, keys.key_set, algorithms=keys.algorithms, registry=keys.registry)


def _read_version() -> str | None:
    # Read with the other cache versions, once per request (issue 4: one store round trip
    # for the key ring and the service cache together, however often a request signs).
    return read_version(VERSION_KEY)


def get_keyring() -> KeyRing:
    """The current app's key ring."""
    ring: KeyRing | None = current_app.extensions.get("oidc_keyring")
    if ring is None:
        ring = current_app.extensions.setdefault("oidc_keyring", KeyRing())
    return ring
