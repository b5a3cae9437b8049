"""Password rules and storage, one test per checklist item (A01-A04, A08, B05).

Sources: NIST SP 800-63B-4 §3.1.1.2 and the OWASP Password Storage Cheat Sheet; see
``idp/services/passwords.py``. Hashing uses the cheap test parameters from ``conftest.py``
(t=1, m=64 KiB) except where a test is about the parameters themselves.
"""

from __future__ import annotations

import base64
import gzip
import re
import string
import unicodedata

import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import VerifyMismatchError
from flask import Flask
from pydantic import SecretStr

from idp.config import Settings
from idp.services.passwords import (
    BLOCKLIST_RESOURCE,
    DEFAULT_BLOCKLIST,
    TOO_COMMON,
    TOO_LONG,
    TOO_PERSONAL,
    TOO_SHORT,
    Blocklist,
    PasswordPolicy,
    PasswordRejected,
    Passwords,
    blocklist_key,
    get_passwords,
    init_app,
    normalise,
)

# A person the context-word rules are checked against.
MARY = ("Mary", "Smith", "Mary Smith", "mary.smith@example.sch.uk")
GOOD = "plum kettle fox lantern"  # not on the blocklist, not personal


@pytest.fixture(scope="module")
def passwords(settings: Settings) -> Passwords:
    return Passwords(settings)


def reasons_for(passwords: Passwords, password: str, context: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(PasswordRejected) as caught:
        passwords.check_new(password, context_words=context)
    assert str(caught.value) == " ".join(caught.value.reasons)
    return caught.value.reasons


def phc_parts(stored: str) -> tuple[str, bytes, bytes]:
    match = re.fullmatch(
        r"\$argon2id\$v=19\$(m=\d+,t=\d+,p=\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)", stored
    )
    assert match, stored

    def decode(text: str) -> bytes:
        return base64.b64decode(text + "=" * (-len(text) % 4))

    return match[1], decode(match[2]), decode(match[3])


# -- A01: at least 15 code points, counted after NFKC ----------------------------------------


def test_A01_rejects_14_code_points_accepts_15(passwords):
    assert len("plum kettle fox") == 15
    assert reasons_for(passwords, "plum kettle fo") == [
        "Your password must be at least 15 characters long."
    ]
    passwords.check_new("plum kettle fox")


def test_A01_composed_and_decomposed_e_count_once(passwords):
    composed, decomposed = "\u00e9", "e\u0301"
    assert len(decomposed * 14) == 28  # 28 code points as typed, 14 characters after NFKC
    assert reasons_for(passwords, decomposed * 14) == [TOO_SHORT.format(min_length=15)]
    assert reasons_for(passwords, composed * 14) == [TOO_SHORT.format(min_length=15)]
    passwords.check_new(decomposed * 15)
    passwords.check_new(composed * 15)
    # ... and either form signs in with a password set in the other (A02 "Also").
    assert passwords.verify(passwords.hash(composed * 15), decomposed * 15)


def test_A01_minimum_comes_from_settings(settings):
    stricter = Passwords(settings.model_copy(update={"password_min_length": 20}))
    assert reasons_for(stricter, "plum kettle fox lan") == [TOO_SHORT.format(min_length=20)]
    stricter.check_new("plum kettle fox lant")


def test_A01_policy_never_below_nist_floor_of_8():
    with pytest.raises(ValueError, match="at least 8"):
        PasswordPolicy(min_length=7)


# -- A02: long and Unicode passwords, no truncation, NFKC --------------------------------------


def test_A02_accepts_64_and_100_chars_and_unicode(passwords):
    printable_ascii = string.ascii_letters + string.digits + string.punctuation + " "
    accepted = [
        "correct lantern " * 4,  # 64
        "the quick brown fox jumps over the lazy dog while it rains " * 2,  # over 100
        printable_ascii,  # every printable ASCII character and space
        "ŵy ŷn cysgu'n dawel ar y bryn",  # Welsh
        "日本語のパスワードはとても長いですね",  # Japanese
        "🐱🐶🐭🐹🐰🦊🐻🐼🐨🐯🦁🐮🐷🐸🐵",  # 15 emoji
        "Straße über der Brücke",
    ]
    assert len(accepted[0]) == 64
    assert len(accepted[1]) > 100
    for password in accepted:
        passwords.check_new(password)
        assert passwords.verify(passwords.hash(password), password)


def test_A02_accepts_256_rejects_257_with_reason(passwords):
    passwords.check_new("a lantern " * 25 + "kettle")  # 256
    assert reasons_for(passwords, "a lantern " * 25 + "kettles") == [
        TOO_LONG.format(max_length=256)
    ]


def test_A02_no_truncation_last_char_matters(passwords):
    password = ("moss harbour violin " * 5)[:99] + "X"
    assert len(password) == 100
    stored = passwords.hash(password)
    assert passwords.verify(stored, password)
    assert not passwords.verify(stored, password[:-1])
    assert not passwords.verify(stored, password[:-1] + "Y")


def test_A02_nfkc_ligature_fi_verifies_as_fi(passwords):
    with_ligature = "\ufb01sh and chips on \ufb01fth street"
    plain = "fish and chips on fifth street"
    assert normalise(with_ligature) == plain
    assert passwords.verify(passwords.hash(with_ligature), plain)
    assert passwords.verify(passwords.hash(plain), with_ligature)


# -- A03: no composition rules ----------------------------------------------------------------


def test_A03_no_composition_rules(passwords):
    for password in [
        "correcthorsebatterystaple",  # all lower case, no digits or symbols
        "CORRECT HORSE BATTERY STAPLE",  # all upper case
        "4829 1937 5520 8813",  # digits only
        "lantern kettle plum",
    ]:
        passwords.check_new(password)


# -- A04: blocklist and context words, whole-password comparison ------------------------------


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password123456789", TOO_COMMON),
        ("PASSWORD123456789", TOO_COMMON),  # case-insensitive
        ("qwertyuiopasdfgh", TOO_COMMON),
        ("iloveyou2024!!!!", TOO_COMMON),  # a common password with digits and symbols added
        ("SecureAccess2024!", TOO_PERSONAL),
        ("Secure Access 2024", TOO_PERSONAL),
        ("!!School2024!!!!", TOO_PERSONAL),
        ("DfE-2024-2025-!!!", TOO_PERSONAL),
        ("MarySmith2024!!!!", TOO_PERSONAL),  # <username>2024!
        ("mary.smith@example.sch.uk", TOO_PERSONAL),
        ("Mary Smith 1975 !!!", TOO_PERSONAL),
        ("smith!!!!!!!!!!!!!2", TOO_PERSONAL),
        (
            "\uff2d\uff41\uff52\uff59\uff33\uff4d\uff49\uff54\uff48 2024!!",
            TOO_PERSONAL,
        ),  # fullwidth
    ],
)
def test_A04_blocklisted_and_context_passwords_rejected_with_reason(passwords, password, reason):
    assert len(normalise(password)) >= 15
    assert reason in reasons_for(passwords, password, MARY)


def test_A04_entries_from_the_list_are_rejected(passwords):
    entries = gzip.decompress(BLOCKLIST_RESOURCE.read_bytes()).decode().splitlines()
    long_entries = [entry for entry in entries if len(entry) >= 15]
    for entry in long_entries[::500]:
        assert reasons_for(passwords, entry) == [TOO_COMMON]
        assert reasons_for(passwords, entry.upper()) == [TOO_COMMON]


def test_A04_service_names_passed_in_are_context_words(passwords):
    passwords.check_new("Pupil Tracker 2024")
    reasons = reasons_for(passwords, "Pupil Tracker 2024", ("Pupil Tracker",))
    assert reasons == [TOO_PERSONAL]


def test_A04_containing_a_word_is_fine(passwords):
    for password in [
        "purple elephant password",  # contains the commonest password
        "my school has 3 red doors",  # contains "school"
        "secure access to the allotment",  # contains the service name
        "marysmith likes green tea",  # contains the person's name
        "iloveyou but not on mondays",  # contains a blocklisted password
    ]:
        passwords.check_new(password, context_words=MARY)


def test_A04_blocklist_has_100k_entries():
    data = BLOCKLIST_RESOURCE.read_bytes()
    assert len(data) <= 2 * 1024 * 1024  # shipped in the repository and the package
    entries = gzip.decompress(data).decode("utf-8").split("\n")
    assert entries.pop() == ""  # one entry per line, newline-terminated
    assert len(entries) >= 100_000
    assert len(DEFAULT_BLOCKLIST) == len(entries)
    assert entries == sorted(set(entries))
    assert all(entry == blocklist_key(entry) and len(entry) >= 8 for entry in entries)
    # ASVS 6.2.4: at least the top 3000 passwords that meet the 15-character policy.
    assert sum(len(entry) >= 15 for entry in entries) >= 3000


def test_A04_blocklist_lookup_is_exact(tmp_path):
    path = tmp_path / "list.txt.gz"
    path.write_bytes(gzip.compress(b"apple pie\nbanana split\ncherry tart\n"))
    blocklist = Blocklist(path)
    assert len(blocklist) == 3
    for present in ("apple pie", "banana split", "cherry tart"):
        assert present in blocklist
    for absent in ("", "apple", "apple pie!", "aardvark", "zebra", "banana split\ncherry tart"):
        assert absent not in blocklist


def test_A04_blocklist_is_read_lazily_and_once(tmp_path):
    path = tmp_path / "list.txt.gz"
    path.write_bytes(gzip.compress(b"apple pie\n"))
    reads: list[int] = []

    class CountingSource:
        def read_bytes(self) -> bytes:
            reads.append(1)
            return path.read_bytes()

    blocklist = Blocklist(CountingSource())  # type: ignore[arg-type]
    assert reads == []  # nothing is read until the first lookup
    assert "apple pie" in blocklist
    assert "pear tart" not in blocklist
    assert len(blocklist) == 1
    assert reads == [1]


def test_A04_reasons_and_guidance_have_no_composition_rules(passwords):
    texts = [TOO_SHORT, TOO_LONG, TOO_COMMON, TOO_PERSONAL, passwords.policy.guidance]
    for text in texts:
        assert not re.search(r"must (contain|include)|at least one|upper ?case|capital", text, re.I)
    assert "three or four random words" in TOO_COMMON


# -- A08: argon2id, parameters in the PHC string, rehash, pepper ------------------------------


def test_A08_argon2id_phc_parameters_and_salt(passwords):
    first, second = passwords.hash(GOOD), passwords.hash(GOOD)
    parameters, salt, digest = phc_parts(first)
    assert parameters == "m=64,t=1,p=1"  # the test settings, recorded in the string
    assert len(salt) >= 16
    assert len(digest) == 32
    assert phc_parts(second)[1] != salt  # a fresh random salt per password
    assert first != second


def test_A08_production_defaults_meet_owasp_minimum(settings):
    defaults = Settings.model_fields
    production = Passwords(
        settings.model_copy(
            update={
                name: defaults[name].default
                for name in ("argon2_time_cost", "argon2_memory_cost", "argon2_parallelism")
            }
        )
    )
    parameters = extract_parameters(production.hash(GOOD))
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)


def test_A08_needs_rehash_when_parameters_raised(settings, passwords):
    stored = passwords.hash(GOOD)
    assert not passwords.needs_rehash(stored)
    raised = Passwords(
        settings.model_copy(update={"argon2_time_cost": 2, "argon2_memory_cost": 128})
    )
    assert raised.verify(stored, GOOD)  # old hashes still verify: the string carries its costs
    assert raised.needs_rehash(stored)
    rehashed = raised.hash(GOOD)
    assert not raised.needs_rehash(rehashed)
    assert extract_parameters(rehashed).time_cost == 2
    assert raised.needs_rehash("not a hash")


def test_A08_pepper_means_dump_alone_cannot_verify(settings, passwords):
    peppered = Passwords(
        settings.model_copy(update={"password_pepper": SecretStr("insecure-test-pepper-one")})
    )
    stored = peppered.hash(GOOD)
    assert peppered.verify(stored, GOOD)
    # Whoever has the database but not the environment cannot test guesses against it.
    assert not passwords.verify(stored, GOOD)
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(stored, GOOD)
    other = Passwords(
        settings.model_copy(update={"password_pepper": SecretStr("insecure-test-pepper-two")})
    )
    assert not other.verify(stored, GOOD)


def test_A08_empty_pepper_is_refused(settings):
    with pytest.raises(ValueError, match="IDP_PASSWORD_PEPPER"):
        Passwords(settings.model_copy(update={"password_pepper": SecretStr("")}))


# -- B05: unknown users cost the same ----------------------------------------------------------


def test_B05_unknown_user_verify_uses_dummy_hash(passwords, monkeypatch):
    checked: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self, stored, password):
        checked.append(stored)
        return real_verify(self, stored, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    real = passwords.hash(GOOD)

    assert passwords.verify(None, GOOD) is False
    assert passwords.verify("", GOOD) is False
    assert passwords.verify("$2b$12$not-an-argon2-hash", GOOD) is False
    assert passwords.verify(real, GOOD) is True

    dummy, also_dummy, after_bad_hash, known = checked[0], checked[1], checked[-2], checked[-1]
    assert len(checked) == 5  # the bad hash is tried, then the dummy is checked instead
    assert dummy == also_dummy == after_bad_hash != known
    assert extract_parameters(dummy) == extract_parameters(real)  # the same work


# -- wiring ------------------------------------------------------------------------------------


def test_init_app_puts_the_service_on_the_app(app, settings):
    if "passwords" not in app.extensions:
        init_app(app, settings)
    assert get_passwords() is app.extensions["passwords"]
    assert get_passwords().policy.min_length == settings.password_min_length


def test_get_passwords_without_init_app_says_what_to_do():
    bare = Flask("bare")
    with bare.app_context(), pytest.raises(RuntimeError, match=r"init_app"):
        get_passwords()


def test_normalise_is_nfkc():
    assert normalise("\u212b") == unicodedata.normalize("NFKC", "\u212b") == "\u00c5"
