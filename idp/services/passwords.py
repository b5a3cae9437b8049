"""Password rules and password storage: checklist section A (A01-A04, A08) and B05.

Rules for a new password (NIST SP 800-63B-4 §3.1.1.2, "Password Verifiers"; OWASP ASVS 5.0 V6.2):

- The password is NFKC-normalised first, the same way when it is set and when it is checked
  (§3.1.1.2: verifiers SHOULD normalise Unicode passwords with NFKC or NFKD before hashing; A02).
- Length is counted in Unicode code points after NFKC, so a composed or decomposed "é" is one
  character (§3.1.1.2 item 4: each code point SHALL count as one character; A01). The minimum
  comes from settings (15 by default: §3.1.1.2 item 1 requires 8 and recommends 15; ASVS 6.2.1).
  At least 64 characters are accepted (§3.1.1.2 item 2); we accept up to 256 so an attacker
  cannot make us normalise and hash megabytes, and say so when a password is longer. Nothing is
  ever truncated (§3.1.1.2 item 9; ASVS 6.2.9).
- No composition rules: no "one upper case, one digit, one symbol" (§3.1.1.2 item 5: verifiers
  SHALL NOT impose composition rules such as mixtures of character types; ASVS 6.2.5; A03).
- The whole password, lower-cased after NFKC, is compared with a blocklist of common and breached
  passwords, and with context words: the service's own name, "school", "DfE", and the person's
  names and email address (§3.1.1.2 blocklist paragraph: breach corpuses, dictionary words and
  context-specific words such as the service's name; ASVS 6.2.4, 6.2.11, 6.2.12; A04). A
  password is rejected when it *is* such a value, or is one with only digits, punctuation,
  symbols or spaces added (``SecureAccess2024!``, ``iloveyou2024!!!``,
  ``<name>2024!``). A password that merely *contains* a listed word among other letters
  (``purple elephant password``) is accepted: NIST compares whole passwords, not substrings.
- Every rejection carries reasons in plain English for a school office worker, with guidance that
  never asks for symbols or capitals (§3.1.1.2: verifiers SHALL offer guidance, such as a
  strength meter or the reason for a rejection; A04 "Also").

Storage (OWASP Password Storage Cheat Sheet, "Argon2id", "Upgrading the Work Factor",
"Peppering"; NIST SP 800-63B-4 §3.1.1.2, salted password hashing with the cost factor stored):

- argon2id through argon2-cffi's ``PasswordHasher(type=Type.ID)`` with the costs from settings, a
  16-byte random salt per password and a PHC string that records the parameters (A08).
- Optional pepper: when ``IDP_PASSWORD_PEPPER`` is set, the argon2id input is
  HMAC-SHA-256(pepper, NFKC password), so a database dump without the environment cannot be used
  to test guesses. The PHC string does not say whether a pepper was used, so the pepper must be
  chosen before the first password is stored; changing or removing it later invalidates every
  stored password (PSCS "Peppering": users then reset through email).
- :meth:`Passwords.needs_rehash` tells the sign-in service to re-hash after a successful check
  when the parameters have been raised (PSCS "Upgrading the Work Factor").
- :meth:`Passwords.verify` with no stored hash (an unknown user, or one who has not set a
  password) still runs argon2id against a dummy hash made with the same parameters, so the answer
  costs the same time either way (ASVS 6.3.8; OWASP Forgot Password Cheat Sheet; B05).

The blocklist is ``idp/data/password-blocklist.txt.gz``, built by
``scripts/build_password_blocklist.py`` from pinned registry packages (its docstring names them).
It is loaded lazily, once per process, into one sorted bytes blob plus an array of line offsets
and searched by bisection: about 7 MB in memory for ~476,000 entries, against about 44 MB for a
``frozenset`` of the same strings (measured with tracemalloc on CPython 3.11).
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import hashlib
import hmac
import logging
import re
import secrets
import threading
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app

from idp.config import Settings

log = logging.getLogger(__name__)

#: The shipped blocklist (see ``scripts/build_password_blocklist.py``).
BLOCKLIST_RESOURCE: Final[Traversable] = files("idp").joinpath("data/password-blocklist.txt.gz")

#: NIST SP 800-63B-4 §3.1.1.2 item 2: verifiers SHOULD permit at least 64 characters.
NIST_MINIMUM_MAX_LENGTH: Final = 64
#: Our ceiling: long enough for any passphrase, short enough to bound NFKC and hashing work.
DEFAULT_MAX_LENGTH: Final = 256

#: OWASP PSCS / NIST SP 800-63B-4 §3.1.1.2: a random salt per password (NIST's floor: 32 bits).
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32

#: Words anyone attacking this service would try first (A04). Callers add the person's own
#: names and email address, and the names of the services they are signing in to.
SERVICE_WORDS: Final[tuple[str, ...]] = (
    "Secure Access",
    "School",
    "Schools",
    "DfE",
    "Department for Education",
)

# Reasons shown to the person. GOV.UK style: say what to do, never demand symbols or capitals.
GUIDANCE: Final = (
    "Choose a longer phrase that is personal to you, for example three or four random words."
)
TOO_SHORT: Final = "Your password must be at least {min_length} characters long."
TOO_LONG: Final = "Your password must be {max_length} characters or fewer."
TOO_COMMON: Final = f"This password is too common. {GUIDANCE}"
TOO_PERSONAL: Final = (
    "Your password must not be your name, your email address or the name of this service, "
    f"even with numbers or symbols added. {GUIDANCE}"
)


class PasswordRejected(ValueError):
    """A new password breaks the policy. ``reasons``: sentences to show the person as they are."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons: list[str] = list(reasons)
        super().__init__(" ".join(self.reasons))


def normalise(password: str) -> str:
    """NFKC, as NIST SP 800-63B-4 §3.1.1.2 recommends, so "ﬁ" (U+FB01) and "fi" are one password.

    Applied identically when a password is set (:meth:`Passwords.check_new`,
    :meth:`Passwords.hash`) and when it is checked (:meth:`Passwords.verify`) (A02).
    """
    return unicodedata.normalize("NFKC", password)


def blocklist_key(text: str) -> str:
    """The form in which passwords are compared with the blocklist: NFKC, then lower case.

    The build script writes every blocklist entry through this same function, so the comparison
    is case-insensitive and NFKC-stable on both sides (A04).
    """
    return normalise(text).lower()


def _is_letter(char: str) -> bool:
    # Letters and combining marks (L*, M*): what is left of a word once digits (N*), punctuation
    # (P*), symbols (S*), spaces (Z*) and controls (C*) are taken away, in any script.
    return unicodedata.category(char)[0] in "LM"


def _letters(text: str) -> str:
    """Only the letters: ``"secure-access 2024!"`` → ``"secureaccess"``."""
    return "".join(char for char in text if _is_letter(char))


def _trim(text: str) -> str:
    """Drop non-letters from both ends: ``"!!iloveyou2024"`` → ``"iloveyou"``."""
    start, end = 0, len(text)
    while start < end and not _is_letter(text[start]):
        start += 1
    while end > start and not _is_letter(text[end - 1]):
        end -= 1
    return text[start:end]


class Blocklist:
    """A sorted, deduplicated list of lower-cased NFKC passwords, searched by bisection.

    The file is read on the first lookup, once per process, and kept as one ``bytes`` blob with an
    ``array`` of line-end offsets (about 4 bytes per entry plus the text itself): several times
    smaller than a ``frozenset`` of ``str``, which matters with one copy per web worker. Lookups
    take the *key* form (:func:`blocklist_key`).
    """

    def __init__(self, source: Traversable | Path) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._loaded = False
        self._blob = b""
        self._ends: array[int] = array("I")  # offset of the newline that ends each entry

    def _load(self) -> int:
        """Read the file if this process has not yet; return the number of entries."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    blob = gzip.decompress(self._source.read_bytes())
                    if blob and not blob.endswith(b"\n"):
                        blob += b"\n"
                    self._ends = array("I", (m.start() for m in re.finditer(b"\n", blob)))
                    self._blob = blob
                    self._loaded = True
                    log.debug("Loaded %d blocklisted passwords", len(self._ends))
        return len(self._ends)

    def _entry(self, index: int) -> bytes:
        start = self._ends[index - 1] + 1 if index else 0
        return self._blob[start : self._ends[index]]

    def __len__(self) -> int:
        return self._load()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key or "\n" in key:
            return False
        needle = key.encode("utf-8", "surrogatepass")
        count = self._load()
        index = bisect.bisect_left(range(count), needle, key=self._entry)
        return index < count and self._entry(index) == needle

    def memory_bytes(self) -> int:
        """Bytes held once loaded: the text plus the offsets (reported in the module docstring)."""
        count = self._load()
        return len(self._blob) + self._ends.itemsize * count


#: One shared instance, so the file is read at most once per process whatever the app count.
DEFAULT_BLOCKLIST: Final = Blocklist(BLOCKLIST_RESOURCE)


def _context_forms(words: Iterable[str]) -> set[str]:
    """The letters-only forms a password must not reduce to (A04).

    Each word counts whole (``"Secure Access"`` → ``secureaccess``); an email address also counts
    by its local part (``mary.smith@example.sch.uk`` → ``marysmith``).
    """
    forms: set[str] = set()
    for word in words:
        key = blocklist_key(word).strip()
        candidates = [key]
        local, at, _domain = key.rpartition("@")
        if at and local:
            candidates.append(local)
        forms.update(_letters(candidate) for candidate in candidates)
    forms.discard("")
    return forms


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must be (NIST SP 800-63B-4 §3.1.1.2; checklist A01-A04)."""

    min_length: int
    max_length: int = DEFAULT_MAX_LENGTH
    blocklist: Blocklist = field(default=DEFAULT_BLOCKLIST, repr=False, compare=False)
    service_words: tuple[str, ...] = SERVICE_WORDS

    def __post_init__(self) -> None:
        if self.min_length < 8:
            raise ValueError("NIST SP 800-63B-4 §3.1.1.2 item 1: the minimum is at least 8.")
        if self.max_length < max(self.min_length, NIST_MINIMUM_MAX_LENGTH):
            raise ValueError("NIST SP 800-63B-4 §3.1.1.2 item 2: accept at least 64 characters.")

    @property
    def guidance(self) -> str:
        """Hint text for the new-password field; no composition rules (A04 "Also")."""
        return (
            f"Use at least {self.min_length} characters. A good way to make a strong password "
            "that you can remember is to use three or four random words. You can use spaces, "
            "numbers and symbols if you want to."
        )

    def is_blocklisted(self, password: str) -> bool:
        """Whether the password is listed, as typed or without digits and symbols at its ends."""
        key = blocklist_key(password)
        return key in self.blocklist or _trim(key) in self.blocklist

    def problems(self, password: str, context_words: Iterable[str] = ()) -> list[str]:
        """Every reason the password is unacceptable, as sentences; empty when it is fine."""
        length = len(normalise(password))  # code points after NFKC (A01)
        if length < self.min_length:
            return [TOO_SHORT.format(min_length=self.min_length)]
        if length > self.max_length:
            return [TOO_LONG.format(max_length=self.max_length)]
        reasons: list[str] = []
        key = blocklist_key(password)
        # One reason is enough, and the personal one is the more useful to hear.
        if _letters(key) in _context_forms((*self.service_words, *context_words)):
            reasons.append(TOO_PERSONAL)
        elif self.is_blocklisted(password):
            reasons.append(TOO_COMMON)
        return reasons


class Passwords:
    """The password service: the new-password policy, argon2id hashing and verification."""

    def __init__(self, settings: Settings, *, blocklist: Blocklist | None = None) -> None:
        self.policy = PasswordPolicy(
            min_length=settings.password_min_length,
            blocklist=blocklist or DEFAULT_BLOCKLIST,
        )
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            hash_len=HASH_BYTES,
            salt_len=SALT_BYTES,
            type=Type.ID,
        )
        self._pepper: bytes | None = None
        if settings.password_pepper is not None:
            pepper = settings.password_pepper.get_secret_value()
            if not pepper:
                raise ValueError("IDP_PASSWORD_PEPPER is set but empty: unset it or set a key.")
            self._pepper = pepper.encode("utf-8")
        # Verified against when there is no stored hash, so unknown users cost the same (B05).
        # It is the hash of 32 random bytes that are then forgotten: nothing can match it.
        self._dummy_hash = self._hasher.hash(secrets.token_bytes(32))

    # -- rules ------------------------------------------------------------------------

    def check_new(self, password: str, *, context_words: Iterable[str] = ()) -> None:
        """Raise :class:`PasswordRejected` unless ``password`` may be set as a new password.

        ``context_words``: the person's given name, family name, full name, email address and
        user name, and the names of the services involved. :data:`SERVICE_WORDS` always apply.
        """
        reasons = self.policy.problems(password, context_words)
        if reasons:
            raise PasswordRejected(reasons)

    def is_blocklisted(self, password: str) -> bool:
        """Whether a password is on the blocklist, e.g. to flag it as compromised at sign-in."""
        return self.policy.is_blocklisted(password)

    # -- storage ----------------------------------------------------------------------

    def _secret(self, password: str) -> bytes:
        """The argon2id input: the NFKC password, HMAC'd with the pepper when there is one."""
        data = normalise(password).encode("utf-8", "surrogatepass")
        if self._pepper is None:
            return data
        return hmac.new(self._pepper, data, hashlib.sha256).digest()

    def hash(self, password: str) -> str:
        """An argon2id PHC string, ``$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`` (A08)."""
        return self._hasher.hash(self._secret(password))

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; never raises for a bad password or hash.

        With no stored hash the dummy hash is checked instead and the answer is ``False``, so an
        unknown user costs the same time as a known one (B05).
        """
        secret = self._secret(password)
        if not stored_hash:
            self._spend(secret)
            return False
        try:
            return self._hasher.verify(stored_hash, secret)
        except VerificationError:
            return False
        except InvalidHashError:
            log.warning("A stored password hash could not be parsed; treating it as no match.")
            self._spend(secret)
            return False

    def _spend(self, secret: bytes) -> None:
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy_hash, secret)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether a hash that just verified was made with other parameters and should be redone.

        argon2-cffi's ``check_needs_rehash`` compares type, version, costs, salt and hash lengths
        (PSCS "Upgrading the Work Factor"). A hash that cannot be parsed always needs redoing.
        """
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


def init_app(app: Flask, settings: Settings) -> None:
    """Put the password service on ``app.extensions["passwords"]``."""
    app.extensions["passwords"] = Passwords(settings)


def get_passwords() -> Passwords:
    """The current app's password service."""
    try:
        passwords: Passwords = current_app.extensions["passwords"]
    except KeyError:
        raise RuntimeError(
            "The password service is not set up: call passwords.init_app(app, settings) "
            "in create_app()."
        ) from None
    return passwords
