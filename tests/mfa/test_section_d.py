"""Section D of the security requirements (MFA), one or more tests per item, named by its id.

Time is frozen or moved with time_machine, never waited for. Codes are computed with pyotp
from the secret, as a person's app would.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import AuditEvent, RecoveryCode, TotpCredential, WebAuthnCredential
from idp.models.base import utcnow
from idp.services import crypto
from idp.services.mfa import factors, recovery, totp
from idp.services.mfa.webauthn import RelyingParty
from idp.services.transaction import transaction
from tests.factories import csrf_token, make_user, page_text
from tests.mailbox import emails_to
from tests.mfa.journeys import MfaSignIn, add_key, add_totp, begin, code_for, issue_codes

STEP = totp.PERIOD


def frozen_moment() -> float:
    """A moment 10 s into a TOTP step, so that no step boundary falls inside a test."""
    return (int(datetime.now(UTC).timestamp()) // STEP) * STEP + 10.0


def events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def session_cookie(response) -> bool:
    return any(COOKIE_NAME in h for h in response.headers.getlist("Set-Cookie"))


# -- D01 -------------------------------------------------------------------------------------


def test_D01_secret_is_160_bits_from_the_csprng_and_stored_encrypted(client, user):
    secrets_seen = {totp.new_secret() for _ in range(20)}
    assert len(secrets_seen) == 20
    assert all(len(s) == 32 and len(base64.b32decode(s)) * 8 == 160 for s in secrets_seen)

    assert client.get("/account/security/app").status_code == 302  # signed out: sign in first
    s = MfaSignIn(client)
    s.password(user.email)
    s.finish()

    # Through the account page: the secret is shown while enrolling, and stored encrypted.
    shown = client.get("/account/security/app")
    assert shown.status_code == 200
    key = re.search(r'id="totp-key">([A-Z2-7 ]+)<', shown.get_data(as_text=True)).group(1)
    secret = key.replace(" ", "")
    assert len(secret) == 32
    row = db.session.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id))
    assert secret not in row.secret_ciphertext
    assert row.secret_ciphertext.startswith("v1.")
    assert crypto.decrypt(row.secret_ciphertext, context="totp").decode() == secret
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(row.secret_ciphertext, context="outbox")  # bound to its purpose
    # The QR code is an SVG made on the server, inline as a data: URI (the CSP allows no more).
    assert 'src="data:image/svg+xml' in shown.get_data(as_text=True)

    # Once confirmed, the secret is not shown again anywhere.
    confirm = client.post(
        "/account/security/app",
        data={"code": code_for(secret), "csrf_token": csrf_token(shown)},
    )
    assert confirm.status_code == 303
    overview = client.get("/account/security").get_data(as_text=True)
    assert secret not in overview
    assert key not in overview


# -- D02 -------------------------------------------------------------------------------------


def test_D02_an_app_is_not_active_until_a_valid_code_is_entered(client, user):
    s = MfaSignIn(client)
    s.password(user.email)
    s.finish()
    page = client.get("/account/security/app")
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.get_data(as_text=True)).group(1)
    secret = secret.replace(" ", "")
    token = csrf_token(page)

    no_code = client.post("/account/security/app", data={"code": "", "csrf_token": token})
    assert no_code.status_code == 400
    bad = client.post(
        "/account/security/app", data={"code": wrong(code_for(secret)), "csrf_token": token}
    )
    assert bad.status_code == 400
    assert not factors.factors_of(user).any
    # Not active: signing in asks for no second factor.
    assert s.password(user.email).headers["Location"] == "/sign-in/finish"
    s.finish()

    page = client.get("/account/security/app")
    good = client.post(
        "/account/security/app", data={"code": code_for(secret), "csrf_token": csrf_token(page)}
    )
    assert good.status_code == 303
    db.session.expire_all()
    assert factors.factors_of(user).totp[0].confirmed_at is not None
    assert s.password(user.email).headers["Location"] == "/sign-in/mfa"


def test_D02_changing_a_factor_from_a_two_hour_old_session_demands_reauthentication(
    client, totp_user
):
    user, secret = totp_user
    s = MfaSignIn(client)
    start = utcnow()
    with time_machine.travel(start, tick=False) as traveller:
        s.password(user.email)
        s.totp(code_for(secret))
        s.finish()
        assert client.get("/account/security/app").status_code == 200  # fresh: allowed
        for _ in range(4):  # stay active (E04 idle timeout) while the sign-in ages
            traveller.shift(timedelta(minutes=30))
            assert client.get("/account").status_code == 200
        for path in (
            "/account/security/app",
            "/account/security/app/remove",
            "/account/security/keys/add",
            "/account/security/recovery-codes/new",
        ):
            response = client.get(path)
            assert response.status_code == 302, path
            assert response.headers["Location"].startswith("/account/confirm-password"), path
        # The ceremony's JSON endpoints say where to go instead of redirecting.
        token = csrf_token(client.get("/account/confirm-password"))
        options = client.post(
            "/account/security/keys/add/options", json={}, headers={"X-CSRFToken": token}
        )
        assert options.status_code == 401
        assert options.get_json()["redirect"].startswith("/account/confirm-password")
        # Confirming the password makes the change possible again.
        page = client.get("/account/confirm-password?next=/account/security/app")
        done = client.post(
            "/account/confirm-password?next=/account/security/app",
            data={"password": "correct horse battery staple river", "csrf_token": csrf_token(page)},
        )
        assert done.headers["Location"] == "/account/security/app"
        assert client.get("/account/security/app/remove").status_code == 200


# -- D03 -------------------------------------------------------------------------------------


def test_D03_a_code_is_accepted_once(client, totp_user):
    user, secret = totp_user
    s = MfaSignIn(client)
    with time_machine.travel(frozen_moment(), tick=False):
        code = code_for(secret)
        s.password(user.email)
        assert s.totp(code).headers["Location"] == "/sign-in/finish"
        s.finish()
        s.password(user.email)
        replay = s.totp(code)
        assert replay.status_code == 400
        assert "Enter the correct 6-digit code" in page_text(replay)
        assert session_cookie(s.finish()) is False


def test_D03_window_is_one_step_either_side_of_the_server_clock(client, totp_user):
    user, secret = totp_user
    s = MfaSignIn(client)
    moment = frozen_moment()
    with time_machine.travel(moment, tick=False):
        s.password(user.email)
        assert s.totp(code_for(secret, steps=-2)).status_code == 400
        assert s.totp(code_for(secret, steps=2)).status_code == 400
        assert s.totp(code_for(secret, steps=-1)).status_code == 303
        s.finish()
        # A code older than one already used is refused too ("step <= last used").
        s.password(user.email)
        assert s.totp(code_for(secret, steps=1)).status_code == 303
        s.finish()
        s.password(user.email)
        assert s.totp(code_for(secret)).status_code == 400


def test_D03_last_used_step_is_kept_per_person_in_the_store(app, totp_user):
    from idp.services.mfa import get_totp_verifier

    user, _secret = totp_user
    verifier = get_totp_verifier()
    step = int(datetime.now(UTC).timestamp() // STEP)
    assert verifier.claim_step(user.sub, step) is True
    assert verifier.claim_step(user.sub, step) is False
    assert verifier.claim_step(user.sub, step - 1) is False
    assert verifier.claim_step("someone-else", step) is True  # per person


# -- D04 -------------------------------------------------------------------------------------


def test_D04_ten_bad_codes_lock_the_app_even_for_the_right_code(client, totp_user):
    user, secret = totp_user
    s = MfaSignIn(client)
    with time_machine.travel(frozen_moment(), tick=False) as traveller:
        s.password(user.email)
        for _ in range(10):
            traveller.shift(30)  # past the progressive delay, inside the 15-minute window
            assert s.totp(wrong(code_for(secret))).status_code == 400
        traveller.shift(30)
        refused = s.totp(code_for(secret))
        assert refused.status_code == 429
        assert "too many wrong codes" in page_text(refused)
        assert [m.template for m in emails_to(user.email)] == ["account_locked"]
    assert len(events("account.locked")) == 1
    assert events("account.locked")[0].details["method"] == "totp"


def test_D04_B01_the_totp_counter_is_separate_from_the_password_counter(client, totp_user):
    """9 bad TOTPs, a correct password, 2 more bad TOTPs: locked (keycloak#46164)."""
    user, secret = totp_user
    s = MfaSignIn(client)
    with time_machine.travel(frozen_moment(), tick=False) as traveller:
        s.password(user.email)
        for _ in range(9):
            traveller.shift(30)
            assert s.totp(wrong(code_for(secret))).status_code == 400
        traveller.shift(30)
        s.password(user.email)  # a password success does not reset the TOTP counter
        traveller.shift(30)
        assert s.totp(wrong(code_for(secret))).status_code == 400
        traveller.shift(30)
        assert s.totp(code_for(secret)).status_code == 429
        # ...and the TOTP lock does not stop the password (B07: no denial of service by it).
        assert s.password(user.email).headers["Location"] == "/sign-in/mfa"


# -- D05 -------------------------------------------------------------------------------------


def test_D05_ten_readable_codes_stored_as_argon2_hashes_only(app, user):
    add_totp(user)
    codes = issue_codes(user)
    assert len(codes) == 10 == len(set(codes))
    assert all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{2}", c) for c in codes)
    assert all(len(recovery.normalise(c)) >= 10 for c in codes)
    rows = list(db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)))
    assert len(rows) == 10
    for row in rows:
        assert row.code_hash.startswith("$argon2id$")
        assert not any(recovery.normalise(c) in row.code_hash for c in codes)


def test_D05_a_code_works_once_and_leads_to_a_new_factor_and_new_codes(client, totp_user):
    user, _secret = totp_user
    codes = issue_codes(user)
    s = MfaSignIn(client)
    s.password(user.email)
    used = s.recovery_code(codes[0].upper().replace("-", " "))  # typed loosely
    assert used.headers["Location"] == "/sign-in/set-up"
    assert session_cookie(s.finish()) is False  # not signed in until re-enrolled

    s.password(user.email)
    again = s.recovery_code(codes[0])
    assert again.status_code == 400
    assert "not used before" in page_text(again)


def test_D05_recovery_codes_are_rate_limited_on_their_own_counter(client, totp_user):
    user, secret = totp_user
    codes = issue_codes(user)
    s = MfaSignIn(client)
    with time_machine.travel(frozen_moment(), tick=False) as traveller:
        s.password(user.email)
        for _ in range(10):
            traveller.shift(30)
            assert s.recovery_code("aaaa-aaaa-aa").status_code == 400
        traveller.shift(30)
        assert s.recovery_code(codes[1]).status_code == 429
        # The app's own counter is untouched.
        assert s.totp(code_for(secret)).headers["Location"] == "/sign-in/finish"


def test_D05_regenerating_codes_invalidates_the_old_set(app, totp_user):
    from idp.services.mfa import MfaError
    from idp.services.throttle import get_throttle

    user, _secret = totp_user
    old = issue_codes(user)
    new = issue_codes(user)
    assert not set(old) & set(new)
    with pytest.raises(MfaError), transaction():
        recovery.redeem(user, old[0], get_throttle())
    with transaction():
        assert recovery.redeem(user, new[0], get_throttle()) == 9


# -- D06 -------------------------------------------------------------------------------------


def test_D06_a_code_for_one_person_cannot_finish_another_persons_sign_in(app, totp_user):
    alice, alice_secret = totp_user
    bob = make_user(email="bob@school.example")
    add_totp(bob)
    alice_browser, bob_browser = app.test_client(), app.test_client()
    MfaSignIn(alice_browser).password(alice.email)
    MfaSignIn(bob_browser).password(bob.email)

    code = code_for(alice_secret)
    stolen = MfaSignIn(bob_browser).totp(code)
    assert stolen.status_code == 400
    finish = MfaSignIn(bob_browser).finish()
    assert finish.headers["Location"] == "/sign-in/mfa"
    assert session_cookie(finish) is False
    # Alice's own code still works for Alice, in her own browser only.
    assert MfaSignIn(alice_browser).totp(code).headers["Location"] == "/sign-in/finish"
    assert session_cookie(MfaSignIn(alice_browser).finish()) is True


def test_D06_forced_browsing_past_the_mfa_step_is_refused(client, totp_user, softkey):
    user, _secret = totp_user
    MfaSignIn(client).password(user.email)
    finish = client.get("/sign-in/finish")
    assert finish.status_code == 303
    assert finish.headers["Location"] == "/sign-in/mfa"
    assert session_cookie(finish) is False
    assert client.get("/account").headers["Location"].startswith("/sign-in")
    # Every later step sends the browser back to the step that is due.
    for path in ("/sign-in/set-up", "/sign-in/set-up/recovery-codes", "/sign-in/new-password"):
        assert client.get(path).headers["Location"] == "/sign-in/mfa", path
    token = csrf_token(client.get("/sign-in/mfa/app"))
    posted = client.post(
        "/sign-in/set-up/security-key/verify", json={}, headers={"X-CSRFToken": token}
    )
    assert posted.headers["Location"] == "/sign-in/mfa"
    # A method the person does not have is not a way round: no key, so no key step.
    assert client.get("/sign-in/mfa/security-key").headers["Location"] == "/sign-in/mfa"


def test_D06_without_a_password_step_every_mfa_url_goes_to_sign_in(client):
    for path in ("/sign-in/mfa", "/sign-in/mfa/app", "/sign-in/set-up", "/sign-in/set-up/app"):
        assert client.get(path).headers["Location"] == "/sign-in", path


# -- D07 -------------------------------------------------------------------------------------


def test_D07_helpdesk_removes_a_factor_with_an_audit_record_and_the_person_is_told(
    app, totp_user, helpdesk_user
):
    user, _secret = totp_user
    credential = factors.totp_credentials(user)[0]
    with transaction():
        factors.remove_totp(
            user,
            credential,
            actor=helpdesk_user.sub,
            reason="INC-1234: phone lost, identity checked with the school",
            enforce_policy=False,
        )
    [event] = events("mfa.totp.removed")
    assert event.actor_id == helpdesk_user.sub
    assert event.target_id == user.sub
    assert event.reason.startswith("INC-1234")
    [email] = emails_to(user.email)
    assert email.template == "mfa_changed"
    assert "removed" in email.subject
    assert not factors.factors_of(user).any


def test_D07_every_change_to_a_factor_is_emailed(client, user, softkey):
    s = MfaSignIn(client)
    s.password(user.email)
    s.finish()
    page = client.get("/account/security/app")
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.get_data(as_text=True)).group(1)
    client.post(
        "/account/security/app",
        data={"code": code_for(secret.replace(" ", "")), "csrf_token": csrf_token(page)},
    )
    s.register_key(softkey, "Office key", prefix="/account/security/keys/add")
    key = db.session.scalar(select(WebAuthnCredential))
    s.post_form(f"/account/security/keys/{key.id}/rename", {"name": "Lanyard key"})
    s.post_form("/account/security/recovery-codes/new", {})
    s.post_form(f"/account/security/keys/{key.id}/remove", {})
    subjects = [m.body.splitlines()[0] for m in reversed(emails_to(user.email))]
    assert subjects == [
        "An authenticator app was added to your Secure Access account.",
        "A security key or passkey called “Office key” was added to your Secure Access account.",
        "The name “Lanyard key” for your key “Office key” was added to your Secure Access account.",
        "A new set of recovery codes was added to your Secure Access account.",
        "A security key or passkey called “Lanyard key” was removed from your Secure Access "
        "account.",
    ]


def test_D07_without_a_recovery_code_the_person_is_sent_to_the_helpdesk(client, totp_user):
    user, _secret = totp_user
    MfaSignIn(client).password(user.email)
    page = page_text(client.get("/sign-in/mfa/recovery-code"))
    assert "You do not have any recovery codes you can use" in page
    assert "contact the DfE helpdesk" in page
    assert "check who you are" in page


# -- D08 -------------------------------------------------------------------------------------


def test_D08_challenges_are_random_and_at_least_64_bits(client, user, softkey):
    add_key(user, softkey)
    s = MfaSignIn(client)
    s.password(user.email)
    token = csrf_token(client.get("/sign-in/mfa/security-key"))
    seen = set()
    for _ in range(3):
        options = s.json("/sign-in/mfa/security-key/options", token, {}).get_json()
        challenge = options["challenge"]
        assert len(base64.urlsafe_b64decode(challenge + "==")) * 8 >= 64
        seen.add(challenge)
    assert len(seen) == 3


def test_D08_a_replayed_assertion_is_refused(client, user, softkey):
    add_key(user, softkey)
    s = MfaSignIn(client)
    s.password(user.email)
    token = csrf_token(client.get("/sign-in/mfa/security-key"))
    options = s.json("/sign-in/mfa/security-key/options", token, {}).get_json()
    assertion = softkey.get(options)
    first = s.json("/sign-in/mfa/security-key/verify", token, {"credential": assertion})
    assert first.get_json() == {"redirect": "/sign-in/finish"}
    s.finish()

    s.password(user.email)
    token = csrf_token(client.get("/sign-in/mfa/security-key"))
    s.json("/sign-in/mfa/security-key/options", token, {})  # a new, different challenge
    replay = s.json("/sign-in/mfa/security-key/verify", token, {"credential": assertion})
    assert replay.status_code == 400
    # The same challenge cannot be answered twice either: it was taken by the first answer.
    fresh = softkey.get(options)
    again = s.json("/sign-in/mfa/security-key/verify", token, {"credential": fresh})
    assert again.status_code == 400
    assert session_cookie(s.finish()) is False


@pytest.mark.parametrize(
    "tamper",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://localhost.evil.example:8080"},
        {"rp_id": "evil.example"},
    ],
    ids=["other-origin", "lookalike-origin", "other-rp-id"],
)
def test_D08_an_assertion_for_another_origin_or_rp_id_is_refused(client, user, softkey, tamper):
    add_key(user, softkey)
    s = MfaSignIn(client)
    s.password(user.email)
    assert s.key(softkey, **tamper).status_code == 400
    assert [e.outcome for e in events("mfa.failed")] == ["failure"]


def test_D08_loopback_origins_only_outside_production():
    development = RelyingParty(
        rp_id="localhost", origins=("http://localhost",), allow_loopback=True
    )
    production = RelyingParty(rp_id="sa.example", origins=("https://sa.example",))
    assert development.origin_allowed("http://localhost:51234")
    assert development.origin_allowed("http://127.0.0.1:5000")
    assert not development.origin_allowed("http://localhost.evil.example")
    assert not development.origin_allowed("https://evil.example")
    assert production.origin_allowed("https://sa.example")
    assert not production.origin_allowed("http://localhost:5000")
    assert not production.origin_allowed("https://sa.example.evil.example")


def test_D08_a_signature_counter_that_goes_back_is_refused_and_audited(client, user, softkey):
    credential = add_key(user, softkey)
    s = MfaSignIn(client)
    s.password(user.email)
    assert s.key(softkey).status_code == 200  # count 1
    s.finish()
    db.session.refresh(credential)
    assert credential.sign_count == 1
    credential.sign_count = 7  # the real key has been used elsewhere: this one is a clone
    db.session.commit()
    s.password(user.email)
    assert s.key(softkey, sign_count=3).status_code == 400
    [event] = events("mfa.webauthn.sign_count_regressed")
    assert event.details["stored_count"] == 7
    assert event.details["presented_count"] == 3
    assert session_cookie(s.finish()) is False


def test_D08_a_security_key_is_offered_as_the_phishing_resistant_option(
    client, user, helpdesk_user
):
    begin(client, require_mfa=True)  # e.g. acr_values asked for MFA
    s = MfaSignIn(client)
    assert s.password(user.email).headers["Location"] == "/sign-in/set-up"
    text = page_text(client.get("/sign-in/set-up"))
    assert "Security key or passkey" in text
    assert "cannot be used on a fake website" in text
    # Staff are offered nothing else (K01).
    assert s.password(helpdesk_user.email).headers["Location"] == "/sign-in/set-up"
    choose = client.get("/sign-in/set-up")
    assert choose.headers["Location"] == "/sign-in/set-up/security-key"
    text = page_text(client.get("/sign-in/set-up/security-key"))
    assert "cannot be tricked into working on a fake website" in text
