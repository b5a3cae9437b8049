"""Issue 8 / K02: the helpdesk's actions on one person, through the console pages.

Each action needs a reason, is audited with actor, target and reason, and emails the person.
"""

from __future__ import annotations

from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient

from idp.models import StaffRole, UserStatus
from idp.services import helpdesk_actions
from idp.services.sso_sessions import get_sso_sessions
from idp.services.throttle import account_key_for, get_throttle
from idp.store import get_store
from tests.console.action_helpers import audit_events, reload, staff_client, submit
from tests.console.helpers import sign_in_staff
from tests.factories import SignIn, make_user, page_text
from tests.mailbox import emails_to, latest_link

REASON = "Ticket 4821: caller verified by call-back"


def flashed(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return " ".join(message for _, message in session.get("_flashes", []))


def path(user, action: str) -> str:
    return f"/helpdesk/users/{user.sub}/actions/{action}"


def test_send_reset_link_emails_a_working_link_and_audits_the_reason(client: FlaskClient) -> None:
    staff = sign_in_staff(client)
    target = make_user(email="ada@hill-school.sch.uk")

    page = client.get(path(target, "send_reset"))
    assert 'type="password"' not in page.get_data(as_text=True)  # K02: never set a password
    response = submit(client, path(target, "send_reset"), {"reason": REASON})

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/helpdesk/users/{target.sub}")
    assert "Password reset link sent" in flashed(client)
    [event] = audit_events("helpdesk.password_reset_sent", target)
    assert (event.actor_id, event.reason, event.outcome) == (staff.sub, REASON, "success")
    [email] = emails_to(target.email)
    assert email.template == "helpdesk_password_reset"
    reset = client.get(latest_link(target.email))
    assert reset.status_code == 200
    assert "Create a new password" in page_text(reset)


def test_a_reason_is_required(client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user()

    response = submit(client, path(target, "sign_out"), {"reason": "  "})

    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert 'href="#reason"' in response.get_data(as_text=True)
    assert response.get_data(as_text=True).count("Enter a reason or a ticket reference") >= 2
    assert audit_events("helpdesk.signed_out_everywhere") == []
    assert emails_to(target.email) == []


def test_a_reason_longer_than_the_limit_is_refused(client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user()

    response = submit(client, path(target, "sign_out"), {"reason": "x" * 501})

    assert response.status_code == 400
    assert "500 characters or fewer" in page_text(response)


def test_resend_invitation_only_for_invited_people(client: FlaskClient) -> None:
    sign_in_staff(client)
    invited = make_user(status=UserStatus.INVITED, password=None)
    active = make_user()

    done = submit(client, path(invited, "resend_invitation"), {"reason": REASON})
    refused = submit(client, path(active, "resend_invitation"), {"reason": REASON})

    assert done.status_code == 303
    assert [m.template for m in emails_to(invited.email)] == ["invitation"]
    assert client.get(latest_link(invited.email)).status_code == 200
    assert len(audit_events("helpdesk.invitation_resent", invited)) == 1
    assert refused.status_code == 409
    assert "already set up their account" in page_text(refused)
    assert emails_to(active.email) == []


def test_unlock_lifts_the_lock(client: FlaskClient) -> None:
    staff = sign_in_staff(client)
    target = make_user()
    key = account_key_for(target.email, sub=target.sub)
    get_store().hset("thr:" + key, mapping={"password:lu": -1, "password:c": 100})
    assert get_throttle().is_locked(key)

    response = submit(client, path(target, "unlock"), {"reason": REASON})

    assert response.status_code == 303
    assert not get_throttle().is_locked(key)
    [event] = audit_events("helpdesk.unlocked", target)
    assert (event.actor_id, event.reason) == (staff.sub, REASON)
    assert [m.template for m in emails_to(target.email)] == ["helpdesk_action"]
    assert "unlocked" in emails_to(target.email)[0].subject
    assert SignIn(client.application.test_client()).with_password(target.email).status_code == 303


def test_unlock_of_an_unlocked_account_says_so_and_does_nothing(client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user()

    response = submit(client, path(target, "unlock"), {"reason": REASON})

    assert response.status_code == 409
    assert "This account is not locked" in page_text(response)
    assert audit_events("helpdesk.unlocked") == []
    assert emails_to(target.email) == []


def test_sign_out_everywhere_ends_the_persons_sessions(app: Flask, client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user()
    browser = app.test_client()
    SignIn(browser).completed(target.email)
    assert browser.get("/account").status_code == 200

    response = submit(client, path(target, "sign_out"), {"reason": REASON})

    assert response.status_code == 303
    assert get_sso_sessions().list_for_user(target.sub) == []
    assert browser.get("/account").status_code == 302
    [event] = audit_events("helpdesk.signed_out_everywhere", target)
    assert event.details["sessions_ended"] == 1
    assert [m.template for m in emails_to(target.email)] == ["helpdesk_action"]


def test_deactivate_and_reactivate(app: Flask, client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    target = make_user()
    browser = app.test_client()
    SignIn(browser).completed(target.email)

    off = submit(client, path(target, "deactivate"), {"reason": REASON})

    assert off.status_code == 303
    assert reload(target).status is UserStatus.DEACTIVATED
    assert browser.get("/account").status_code == 302
    assert SignIn(app.test_client()).with_password(target.email).status_code == 400  # refused
    assert len(audit_events("helpdesk.deactivated", target)) == 1

    on = submit(client, path(target, "reactivate"), {"reason": REASON})

    assert on.status_code == 303
    assert reload(target).status is UserStatus.ACTIVE
    assert len(audit_events("helpdesk.reactivated", target)) == 1
    subjects = [m.subject for m in emails_to(target.email)]
    assert any("deactivated" in s for s in subjects)
    assert any("reactivated" in s for s in subjects)


def test_staff_cannot_deactivate_themselves(client: FlaskClient) -> None:
    staff = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)

    response = submit(client, path(staff, "deactivate"), {"reason": REASON})

    assert response.status_code == 403
    assert "cannot deactivate your own account" in page_text(response)
    assert reload(staff).status is UserStatus.ACTIVE


def test_helpdesk_agent_cannot_deactivate_a_helpdesk_admin(app: Flask, client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    _, admin = staff_client(app, StaffRole.HELPDESK_ADMIN, given_name="Ada")

    response = submit(client, path(admin, "deactivate"), {"reason": REASON})

    assert response.status_code == 403
    assert reload(admin).status is UserStatus.ACTIVE


def test_the_last_helpdesk_admin_is_never_deactivated(app: Flask) -> None:
    admin = make_user(staff_role=StaffRole.HELPDESK_ADMIN)
    assert helpdesk_actions.is_last_helpdesk_admin(admin)
    second = make_user(staff_role=StaffRole.HELPDESK_ADMIN)
    assert not helpdesk_actions.is_last_helpdesk_admin(admin)
    second.status = UserStatus.DEACTIVATED
    assert helpdesk_actions.is_last_helpdesk_admin(admin)


def test_change_email_tells_both_addresses(client: FlaskClient) -> None:
    staff = sign_in_staff(client)
    target = make_user(email="old@hill-school.sch.uk")

    response = submit(
        client,
        path(target, "change_email"),
        {"email": "New.Person@Hill-School.sch.uk", "reason": REASON},
    )

    assert response.status_code == 303
    assert reload(target).email == "new.person@hill-school.sch.uk"
    [old] = emails_to("old@hill-school.sch.uk")
    [new] = emails_to("new.person@hill-school.sch.uk")
    assert old.template == "email_changed_notice"
    assert "new.person@hill-school.sch.uk" in old.body
    assert new.template == "helpdesk_action"
    [event] = audit_events("helpdesk.email_changed", target)
    assert (event.actor_id, event.reason) == (staff.sub, REASON)
    assert SignIn(client.application.test_client()).completed("new.person@hill-school.sch.uk")


def test_change_email_refuses_a_role_mailbox_or_a_used_address(client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user(email="old@hill-school.sch.uk")
    make_user(email="taken@hill-school.sch.uk")

    mailbox = submit(
        client,
        path(target, "change_email"),
        {"email": "office@hill-school.sch.uk", "reason": REASON},
    )
    taken = submit(
        client,
        path(target, "change_email"),
        {"email": "taken@hill-school.sch.uk", "reason": REASON},
    )

    assert mailbox.status_code == 400
    assert "shared mailbox" in page_text(mailbox)
    assert 'href="#email"' in mailbox.get_data(as_text=True)
    assert taken.status_code == 400
    assert "already uses this email address" in page_text(taken)
    assert reload(target).email == "old@hill-school.sch.uk"
    assert emails_to("old@hill-school.sch.uk") == []


def test_change_name(client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user(given_name="Ada", family_name="Lovelace")

    page = client.get(path(target, "change_name"))
    assert 'value="Lovelace"' in page.get_data(as_text=True)
    response = submit(
        client,
        path(target, "change_name"),
        {"given_name": "Ada", "family_name": "King", "reason": REASON},
    )

    assert response.status_code == 303
    assert reload(target).name == "Ada King"
    [event] = audit_events("helpdesk.name_changed", target)
    assert event.details == {"old_name": "Ada Lovelace", "new_name": "Ada King"}
    [email] = emails_to(target.email)
    assert "Ada King" in email.body


def test_people_without_a_helpdesk_role_are_refused(client: FlaskClient) -> None:
    plain = make_user()
    target = make_user()
    SignIn(client).completed(plain.email)

    assert client.get(path(target, "send_reset")).status_code == 403
    assert client.post(path(target, "send_reset"), data={"reason": REASON}).status_code in (
        400,
        403,
    )
    assert emails_to(target.email) == []


def test_an_unknown_person_is_404(client: FlaskClient) -> None:
    sign_in_staff(client)
    assert client.get("/helpdesk/users/not-a-sub/actions/unlock").status_code == 404


def test_the_persons_page_links_to_every_action_that_applies(client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    target = make_user()

    page = client.get(f"/helpdesk/users/{target.sub}")

    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    links = {a.get_text(" ", strip=True): a["href"] for a in soup.select("#user-actions a")}
    assert [text.split(" for ")[0] for text in links] == [
        "Send a password reset link",
        "Unlock",
        "Sign out everywhere",
        "Reset security methods (MFA)",
        "Change email address",
        "Change name",
        "Deactivate",
    ]
    for href in links.values():
        assert client.get(href).status_code == 200, href
