"""Recovery codes: ten single-use look-up secrets, shown once, stored as argon2id hashes.

Checklist item **D05** (NIST SP 800-63B-4 §3.1.2.1-2, §4.2; ASVS 6.5.1-2) and how it is met:

- Ten codes from the ``secrets`` CSPRNG, each ten characters from a 31-character alphabet
  without look-alikes (no ``0 o 1 l i``), shown as ``abcd-efgh-jk``: easy to read aloud and
  to type, about 49.5 bits each.
- **Why argon2id and not a keyed hash.** NIST SP 800-63B-4 §3.1.2.2 requires look-up secrets
  under 112 bits of entropy to be stored with an approved password hashing scheme (salted,
  costly), which is D05's "argon2 if below 112 bits". A keyed hash (HMAC with a key outside
  the database) would be faster to check and safe while the key stays secret, but 49.5 bits
  fall to an offline search within hours once the key leaks with the dump. So each code is
  hashed with the password service's argon2id (same parameters and optional pepper as
  passwords, :meth:`~idp.services.passwords.Passwords.hash`). The cost: redeeming a code
  checks up to ten hashes. Redemption is rare and rate-limited, so that is acceptable.
- Single use: a redeemed code gets ``used_at`` and never matches again. After a code is used
  the person re-enrols and is given a new set (NIST §4.2 "SHALL issue a new one").
- Rate-limited on its own throttle counter, kind ``"recovery_code"`` (B01, B04).
- Shown once: the plain codes exist only in the response that shows them, held meanwhile in
  the store encrypted (context ``"recovery_codes"``) for at most 15 minutes under a random
  reference only this browser holds (:func:`stash`). Regenerating replaces the whole set.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Final

from idp.extensions import db
from idp.models import RecoveryCode, User
from idp.models.base import utcnow
from idp.services import audit, crypto
from idp.services.mfa import attempts, factors
from idp.services.mfa.common import CodeRejected, Method
from idp.services.passwords import get_passwords
from idp.services.throttle import Throttle
from idp.store import Store

COUNT: Final = 10
LENGTH: Final = 10
ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
STASH_PREFIX: Final = "mfa:codes:"
STASH_SECONDS: Final = 900
STASH_CONTEXT: Final = "recovery_codes"

_NOT_CODE = re.compile(r"[^a-z0-9]")


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalise(code: str) -> str:
    """What is hashed and compared: lower case, without spaces or hyphens."""
    return _NOT_CODE.sub("", (code or "").lower())


def issue(user: User, *, actor: str, notify: bool = True) -> list[str]:
    """A new set of codes for the person, replacing any old set (used or not). Shown once.

    ``notify=False`` when the codes come with a new factor whose own email says enough.
    """
    factors.delete_recovery_codes(user)
    codes = [new_code() for _ in range(COUNT)]
    hasher = get_passwords()
    for code in codes:
        db.session.add(RecoveryCode(user_id=user.id, code_hash=hasher.hash(normalise(code))))
    db.session.flush()
    audit.record(
        "mfa.recovery_codes.issued",
        actor=actor,
        target=user.sub,
        target_type="user",
        method=Method.RECOVERY_CODE.value,
        count=COUNT,
    )
    if notify:
        factors.notify(user, change="added", method="a new set of recovery codes")
    return codes


def redeem(user: User, code: str, throttle: Throttle) -> int:
    """Use one code (single use, D05); returns how many are left. Throttled (B04).

    Raises :class:`CodeRejected` for a wrong or used code. On success the caller commits.
    """
    key = attempts.check(throttle, user, Method.RECOVERY_CODE)
    candidate = normalise(code)
    hasher = get_passwords()
    unused = factors.unused_recovery_codes(user)
    if len(candidate) == LENGTH:
        for row in unused:
            if hasher.verify(row.code_hash, candidate):
                row.used_at = utcnow()
                attempts.succeeded(throttle, key, Method.RECOVERY_CODE)
                audit.record(
                    "mfa.recovery_code.used",
                    actor=user.sub,
                    target=user.sub,
                    target_type="user",
                    method=Method.RECOVERY_CODE.value,
                    left=len(unused) - 1,
                )
                # NIST SP 800-63B-4 §4.2: a recovery SHALL be notified, even if the person
                # never finishes setting up their new factor.
                factors.notify(
                    user, change="removed", method="a recovery code, which was used to sign in,"
                )
                return len(unused) - 1
    attempts.failed(throttle, user, key, Method.RECOVERY_CODE)
    raise CodeRejected("The recovery code is not right, or it has been used")


# -- showing a new set once ------------------------------------------------------------------


def stash(store: Store, codes: list[str]) -> str:
    """Hold new codes, encrypted, until the page showing them is read; return the reference."""
    ref = secrets.token_urlsafe(24)
    sealed = crypto.encrypt(json.dumps(codes).encode(), context=STASH_CONTEXT)
    store.set(STASH_PREFIX + ref, sealed, ex=STASH_SECONDS)
    return ref


def peek(store: Store, ref: str | None) -> list[str] | None:
    if not ref:
        return None
    raw = store.get(STASH_PREFIX + ref)
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    codes = json.loads(crypto.decrypt(text, context=STASH_CONTEXT))
    return [str(code) for code in codes]


def drop(store: Store, ref: str | None) -> None:
    if ref:
        store.delete(STASH_PREFIX + ref)
