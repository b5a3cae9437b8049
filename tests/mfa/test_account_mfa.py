"""The account's security methods page: add, rename, remove, new recovery codes (E05, D07)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import time_machine
from sqlalchemy import select

from idp.extensions import db
from idp.models import (
    AccessGrant,
    Organisation,
    OrganisationType,
    Service,
    WebAuthnCredential,
)
from idp.services.mfa import factors, totp
from tests.factories import csrf_token, page_text
from tests.mailbox import emails_to
from tests.mfa.journeys import MfaSignIn, add_key, code_for, issue_codes
from tests.mfa.softkey import SoftKey


def frozen_moment() -> float:
    return (int(datetime.now(UTC).timestamp()) // totp.PERIOD) * totp.PERIOD + 10.0


CODE = re.compile(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{2}\b")


def signed_in(client, user, *, secret: str | None = None, key: SoftKey | None = None) -> MfaSignIn:
    s = MfaSignIn(client)
    s.password(user.email)
    if secret:
        s.totp(code_for(secret))
    if key:
        s.key(key)
    assert s.finish().headers["Location"] == "/services"  # issue 7: "Your services"
    return s


def test_the_account_page_links_to_security_methods(client, user):
    signed_in(client, user)
    page = page_text(client.get("/account"))
    assert "Security methods None set up Manage security methods" in page
    overview = page_text(client.get("/account/security"))
    assert "You have not set up a security method yet" in overview


def test_first_factor_from_the_account_page_shows_recovery_codes_once(client, user):
    signed_in(client, user)
    page = client.get("/account/security/app")
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.get_data(as_text=True))[1]
    done = client.post(
        "/account/security/app",
        data={"code": code_for(secret.replace(" ", "")), "csrf_token": csrf_token(page)},
    )
    assert done.headers["Location"] == "/account/security/recovery-codes"
    codes_page = client.get("/account/security/recovery-codes")
    assert len(CODE.findall(page_text(codes_page))) == 10
    assert "You will not be able to see these codes again" in page_text(codes_page)
    saved = client.post(
        "/account/security/recovery-codes", data={"csrf_token": csrf_token(codes_page)}
    )
    assert saved.headers["Location"] == "/account/security"
    assert client.get("/account/security/recovery-codes").status_code == 303
    overview = page_text(client.get("/account/security"))
    assert "You have 10 unused recovery codes" in overview
    assert "Authenticator app Set up" in overview


def test_a_new_app_replaces_the_old_one(client, totp_user):
    user, old_secret = totp_user
    issue_codes(user)
    with time_machine.travel(frozen_moment(), tick=False) as traveller:
        signed_in(client, user, secret=old_secret)
        page = client.get("/account/security/app")
        secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.get_data(as_text=True))[1]
        secret = secret.replace(" ", "")
        token = csrf_token(page)
        # This 30-second step was used to sign in (D03): say so, rather than "wrong code".
        same_step = client.post(
            "/account/security/app", data={"code": code_for(secret), "csrf_token": token}
        )
        assert same_step.status_code == 400
        assert "Wait for your app to show a new code" in page_text(same_step)
        traveller.shift(totp.PERIOD)
        done = client.post(
            "/account/security/app", data={"code": code_for(secret), "csrf_token": token}
        )
        assert done.headers["Location"] == "/account/security"  # had codes: none shown
        [app] = factors.totp_credentials(user)
        assert app.confirmed_at is not None
        assert totp.secret_of(app) == secret
        assert "replacing your previous one" in emails_to(user.email)[0].body


def test_keys_are_added_renamed_and_removed(client, totp_user):
    user, secret = totp_user
    issue_codes(user)
    s = signed_in(client, user, secret=secret)
    added = s.register_key(SoftKey(), "Office key", prefix="/account/security/keys/add")
    assert added.get_json() == {"redirect": "/account/security"}
    s.register_key(SoftKey(attachment="platform"), "Laptop", prefix="/account/security/keys/add")
    office, laptop = db.session.scalars(select(WebAuthnCredential).order_by(WebAuthnCredential.id))
    overview = page_text(client.get("/account/security"))
    assert "Office key" in overview
    assert "Laptop" in overview

    renamed = s.post_form(f"/account/security/keys/{office.id}/rename", {"name": "Lanyard key"})
    assert renamed.headers["Location"] == "/account/security"
    blank = s.post_form(f"/account/security/keys/{office.id}/rename", {"name": ""})
    assert blank.status_code == 400
    removed = s.post_form(f"/account/security/keys/{laptop.id}/remove", {})
    assert removed.headers["Location"] == "/account/security"
    db.session.expire_all()
    assert [k.name for k in factors.webauthn_credentials(user)] == ["Lanyard key"]


def test_someone_elses_key_cannot_be_touched(client, user):
    from tests.factories import make_user

    other = make_user(email="bob@school.example")
    key = add_key(other, SoftKey())
    signed_in(client, user)
    for path in (
        f"/account/security/keys/{key.id}/rename",
        f"/account/security/keys/{key.id}/remove",
    ):
        assert client.get(path).headers["Location"] == "/account/security"
    page = client.get("/account/confirm-password")  # any form: the token is per session
    response = client.post(
        f"/account/security/keys/{key.id}/remove", data={"csrf_token": csrf_token(page)}
    )
    assert response.headers["Location"] == "/account/security"
    assert db.session.get(WebAuthnCredential, key.id) is not None


def test_removing_the_last_factor_removes_the_recovery_codes_too(client, totp_user):
    user, secret = totp_user
    issue_codes(user)
    s = signed_in(client, user, secret=secret)
    assert s.post_form("/account/security/app/remove", {}).status_code == 303
    assert factors.factors_of(user) == factors.Factors()
    assert "removed" in emails_to(user.email)[0].subject


def test_staff_cannot_remove_their_last_key(client, helpdesk_user):
    key = SoftKey()
    add_key(helpdesk_user, key, "Only key")
    issue_codes(helpdesk_user)
    s = signed_in(client, helpdesk_user, key=key)
    only = factors.webauthn_credentials(helpdesk_user)[0]
    refused = s.post_form(f"/account/security/keys/{only.id}/remove", {})
    assert refused.status_code == 400
    assert "it must be a security key or passkey" in page_text(refused)
    assert refused.get_data(as_text=True).count("<title>Error: ") == 1
    # With a second key, the first can go.
    s.register_key(SoftKey(), "Spare key", prefix="/account/security/keys/add")
    assert s.post_form(f"/account/security/keys/{only.id}/remove", {}).status_code == 303


def test_people_with_a_service_that_requires_mfa_keep_a_factor(client, totp_user):
    user, secret = totp_user
    service = Service(client_id="payroll", name="Payroll", require_mfa=True)
    school = Organisation(
        name="Hill Top Primary", urn="100001", type=OrganisationType.ESTABLISHMENT
    )
    db.session.add_all([service, school])
    db.session.flush()
    db.session.add(AccessGrant(user_id=user.id, organisation_id=school.id, service_id=service.id))
    db.session.commit()
    s = signed_in(client, user, secret=secret)
    refused = s.post_form("/account/security/app/remove", {})
    assert refused.status_code == 400
    assert "you must keep at least one way to prove it's you" in page_text(refused)


def test_new_recovery_codes_replace_the_old_ones(client, totp_user):
    user, secret = totp_user
    old = issue_codes(user)
    s = signed_in(client, user, secret=secret)
    confirm = client.get("/account/security/recovery-codes/new")
    assert "Your old recovery codes will stop working" in page_text(confirm)
    s.post_form("/account/security/recovery-codes/new", {})
    shown = CODE.findall(page_text(client.get("/account/security/recovery-codes")))
    assert len(shown) == 10
    assert not set(shown) & set(old)


def test_adding_a_key_without_javascript_explains(client, user):
    s = signed_in(client, user)
    response = s.post_form("/account/security/keys/add", {"name": "Key"})
    assert response.status_code == 400
    assert "needs JavaScript turned on" in page_text(response)
    assert response.get_data(as_text=True).count("<title>Error: ") == 1
