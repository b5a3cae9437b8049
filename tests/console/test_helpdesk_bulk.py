"""Issue 8: one action for up to 100 pasted addresses, with a result for each row."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.models import StaffRole, UserStatus
from idp.services import helpdesk_bulk
from tests.console.action_helpers import audit_events, reload, submit
from tests.console.helpers import sign_in_staff
from tests.factories import make_user, page_text
from tests.mailbox import emails_to

REASON = "Ticket 6001: Hill Top Primary staff list after phishing incident"


def test_bulk_deactivate_with_mixed_rows(client: FlaskClient) -> None:
    staff = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    first = make_user(email="one@hill-school.sch.uk")
    second = make_user(email="two@hill-school.sch.uk")
    gone = make_user(email="gone@hill-school.sch.uk", status=UserStatus.DEACTIVATED)
    pasted = (
        "ONE@hill-school.sch.uk, nobody@hill-school.sch.uk\n"
        f"gone@hill-school.sch.uk;{staff.email}\n\n"
        "Two Person <two@hill-school.sch.uk>\none@hill-school.sch.uk\nnot an address"
    )

    response = submit(
        client, "/helpdesk/bulk", {"addresses": pasted, "action": "deactivate", "reason": REASON}
    )

    assert response.status_code == 200
    rows = [
        " ".join(tr.get_text(" ", strip=True).split())
        for tr in _rows(response.get_data(as_text=True))
    ]
    assert rows == [
        "ONE@hill-school.sch.uk Done",
        "nobody@hill-school.sch.uk Not found No account uses this email address",
        "gone@hill-school.sch.uk Not applicable This account is already deactivated",
        f"{staff.email} Not applicable You cannot deactivate your own account",
        "two@hill-school.sch.uk Done",
        "not an address Not found This is not a valid email address",
    ]
    assert "done for 2 of 6" in page_text(response)
    assert reload(first).status is UserStatus.DEACTIVATED
    assert reload(second).status is UserStatus.DEACTIVATED
    assert reload(staff).status is UserStatus.ACTIVE
    assert len(audit_events("helpdesk.deactivated")) == 2
    assert all(e.reason == REASON for e in audit_events("helpdesk.deactivated"))
    [summary] = audit_events("helpdesk.bulk")
    assert summary.details["counts"]["done"] == 2
    assert summary.details["counts"]["not_applicable"] == 2
    assert len(emails_to(first.email)) == 1
    assert emails_to(gone.email) == []


def test_bulk_send_reset_links(client: FlaskClient) -> None:
    sign_in_staff(client)
    active = make_user()
    invited = make_user(status=UserStatus.INVITED, password=None)

    response = submit(
        client,
        "/helpdesk/bulk",
        {"addresses": f"{active.email}\n{invited.email}", "action": "send_reset", "reason": REASON},
    )

    assert response.status_code == 200
    assert [m.template for m in emails_to(active.email)] == ["helpdesk_password_reset"]
    assert emails_to(invited.email) == []
    assert "Resend their invitation instead" in page_text(response)


def test_more_than_100_addresses_does_nothing(client: FlaskClient) -> None:
    sign_in_staff(client)
    people = [make_user(email=f"p{n}@hill-school.sch.uk") for n in range(2)]
    pasted = "\n".join([p.email for p in people] + [f"x{n}@hill-school.sch.uk" for n in range(99)])

    response = submit(
        client, "/helpdesk/bulk", {"addresses": pasted, "action": "sign_out", "reason": REASON}
    )

    assert response.status_code == 400
    assert "Enter 100 email addresses or fewer. You entered 101" in page_text(response)
    assert 'href="#addresses"' in response.get_data(as_text=True)
    assert audit_events("helpdesk.signed_out_everywhere") == []
    assert emails_to(people[0].email) == []


def test_bulk_needs_an_action_and_a_reason(client: FlaskClient) -> None:
    sign_in_staff(client)

    response = submit(client, "/helpdesk/bulk", {"addresses": "a@hill-school.sch.uk"})

    assert response.status_code == 400
    text = page_text(response)
    assert "Select what to do" in text
    assert "Enter a reason or a ticket reference" in text


def test_an_mfa_reset_is_never_a_bulk_action() -> None:
    assert "mfa" not in " ".join(action.value for action in helpdesk_bulk.BULK_ACTIONS)


def test_one_failing_row_does_not_stop_the_rest(client: FlaskClient, monkeypatch) -> None:
    """A row that blows up (here: its email cannot be queued) is rolled back alone."""
    sign_in_staff(client)
    first = make_user(email="first@hill-school.sch.uk")
    broken = make_user(email="broken@hill-school.sch.uk")
    last = make_user(email="last@hill-school.sch.uk")
    from idp.services import outbox

    real = outbox.enqueue_email

    def enqueue_email(to: str, template: str, **values: object):
        if to == broken.email:
            raise RuntimeError("simulated failure")
        return real(to, template, **values)

    monkeypatch.setattr(outbox, "enqueue_email", enqueue_email)

    response = submit(
        client,
        "/helpdesk/bulk",
        {
            "addresses": f"{first.email}\n{broken.email}\n{last.email}",
            "action": "sign_out",
            "reason": REASON,
        },
    )

    assert response.status_code == 200
    assert "Failed" in page_text(response)
    assert [e.target_id for e in audit_events("helpdesk.signed_out_everywhere")] == [
        first.sub,
        last.sub,
    ]


def _rows(html: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser").select("tbody tr")
