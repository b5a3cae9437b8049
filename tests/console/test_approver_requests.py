"""The approver's access-request pages over HTTP (issue 7): list, approve, reject, and 404 for
another school's organisation or request ids, however they are forged."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.models import RequestStatus, ServiceRole
from idp.services import access, access_requests
from idp.services.transaction import transaction
from tests.access_helpers import pupil_data, two_schools
from tests.factories import SignIn, csrf_token, page_text
from tests.mailbox import emails_to


@pytest.fixture
def setting(app):
    service = pupil_data(
        ServiceRole(code="viewer", name="Viewer"), ServiceRole(code="editor", name="Editor")
    )
    hilltop, riverside, ada, _, _ = two_schools()
    with transaction():
        made = access_requests.create(ada, hilltop, service, reason="Census returns")
    return service, hilltop, riverside, ada, made


def test_the_approver_lists_and_approves_with_roles(client, setting):
    service, hilltop, _, ada, made = setting
    SignIn(client).completed("sam@hilltop.example")
    listing = client.get(f"/organisations/{hilltop.public_id}/requests")
    assert listing.status_code == 200
    assert "Ada Lovelace" in page_text(listing)
    assert "Pupil data" in page_text(listing)
    detail_url = f"/organisations/{hilltop.public_id}/requests/{made.public_id}"
    detail = client.get(detail_url)
    assert "Census returns" in page_text(detail)
    nothing = client.post(detail_url + "/approve", data={"csrf_token": csrf_token(detail)})
    assert nothing.status_code == 400
    assert "Select at least one Pupil data role" in page_text(nothing)
    done = client.post(
        detail_url + "/approve", data={"roles": ["editor"], "csrf_token": csrf_token(detail)}
    )
    assert done.status_code == 303
    assert [r.code for r in access.grant_for(ada, hilltop, service).roles] == ["editor"]
    after = client.get(done.headers["Location"])
    assert "Ada Lovelace can now use Pupil data" in page_text(after)
    assert "No requests are waiting" in page_text(after)
    [mail] = emails_to("ada@hilltop.example")
    assert mail.template == "access_request_approved"


def test_the_approver_rejects_with_a_reason(client, setting):
    _, hilltop, _, _, made = setting
    SignIn(client).completed("sam@hilltop.example")
    detail_url = f"/organisations/{hilltop.public_id}/requests/{made.public_id}"
    detail = client.get(detail_url)
    blank = client.post(detail_url + "/reject", data={"csrf_token": csrf_token(detail)})
    assert blank.status_code == 400
    assert "Enter a reason for rejecting the request" in page_text(blank)
    done = client.post(
        detail_url + "/reject",
        data={"reason": "Not your job", "csrf_token": csrf_token(detail)},
    )
    assert done.status_code == 303
    db.session.refresh(made)
    assert made.status is RequestStatus.REJECTED
    assert "Not your job" in emails_to("ada@hilltop.example")[0].body


@pytest.mark.parametrize("who", ["rita@riverside.example", "ada@hilltop.example"])
def test_forged_ids_and_other_schools_get_404(client, setting, who):
    _, hilltop, riverside, ada, made = setting
    SignIn(client).completed(who)
    own = riverside.public_id if who.startswith("rita") else hilltop.public_id
    token = csrf_token(client.get("/services/pupil-data/request-access"))
    for url in (
        f"/organisations/{hilltop.public_id}/requests",
        f"/organisations/{hilltop.public_id}/requests/{made.public_id}",
        f"/organisations/{own}/requests/{made.public_id}",
        "/organisations/not-an-organisation/requests",
    ):
        assert client.get(url).status_code == 404, url
    for action in ("approve", "reject"):
        for org in (hilltop.public_id, own):
            response = client.post(
                f"/organisations/{org}/requests/{made.public_id}/{action}",
                data={"roles": ["viewer"], "reason": "x", "csrf_token": token},
            )
            assert response.status_code == 404, (action, org)
    db.session.refresh(made)
    assert made.status is RequestStatus.PENDING
    assert not access.has_access(ada, setting[0], hilltop)


def test_signed_out_goes_to_sign_in(client, setting):
    _, hilltop, _, _, _ = setting
    response = client.get(f"/organisations/{hilltop.public_id}/requests")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]
