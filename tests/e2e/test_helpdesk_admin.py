"""Issue 8 in headless Chromium: a helpdesk admin, signed in with a security key, filters the
audit log and registers a service, seeing its secret once; axe-core checks each page.

WebAuthn uses Chromium's virtual authenticator through the DevTools protocol, on
``http://localhost:<port>`` (browsers refuse WebAuthn on IP-address origins): the shared
``key_page`` / ``virtual_key_page`` in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from idp.extensions import db
from idp.models import Membership, Organisation, StaffRole
from idp.models.base import utcnow
from idp.models.organisation import OrganisationType
from idp.services import audit, audit_log
from idp.services.transaction import transaction
from tests.e2e.conftest import assert_accessible, sign_in_staff_with_new_key
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.e2e


def test_admin_filters_the_audit_log_and_registers_a_service(key_page: Any) -> None:
    admin = make_user(
        email="hana@helpdesk.example",
        given_name="Hana",
        family_name="Admin",
        staff_role=StaffRole.HELPDESK_ADMIN,
    )
    teacher = make_user(email="tom@hill-school.sch.uk", given_name="Tom", family_name="Teach")
    with transaction():
        audit.record("helpdesk.unlocked", actor=admin.sub, target=teacher.sub, reason="TICKET-7")
        audit.record("sign_in.failed", actor=None, target=admin.sub, outcome=audit.FAILURE)
    page = key_page
    sign_in_staff_with_new_key(page, admin.email, DEFAULT_PASSWORD)

    page.goto("/helpdesk/audit")
    assert_accessible(page)
    page.fill("#user", "tom@hill-school.sch.uk")
    page.select_option("#event", "helpdesk.unlocked")
    page.click("button:has-text('Show events')")
    page.wait_for_url("**/helpdesk/audit?*")
    table = page.inner_text("table")
    assert "Account unlocked by the helpdesk" in table
    assert "TICKET-7" in table
    assert "Tom Teach (tom@hill-school.sch.uk)" in table
    assert "Sign-in failed" not in table
    assert_accessible(page)

    page.goto("/helpdesk/admin/services/new")
    assert_accessible(page)
    page.fill("#name", "Get school data")
    page.fill("#client_id", "get-school-data")
    page.fill("#redirect_uris", "https://data.example.gov.uk/*")
    page.click("button:has-text('Register service')")
    page.locator(".govuk-error-summary:has-text('must not contain a wildcard')").wait_for()
    assert_accessible(page)
    page.fill("#redirect_uris", "https://data.example.gov.uk/callback")
    page.click("button:has-text('Register service')")
    page.locator("h1:has-text('Get school data is registered')").wait_for()
    secret = page.input_value("#client-secret")
    assert len(secret) >= 32
    assert_accessible(page)

    page.click("a:has-text('Go to Get school data')")
    page.wait_for_url("**/helpdesk/admin/services/get-school-data")
    assert secret not in page.content()
    assert_accessible(page)

    # The other admin and report pages, each checked with axe-core.
    school = Organisation(type=OrganisationType.ESTABLISHMENT, name="Hill School", urn="100001")
    db.session.add(school)
    db.session.add(Membership(user=teacher, organisation=school))
    db.session.commit()
    for path in (
        "/helpdesk/admin/services",
        "/helpdesk/admin/services/get-school-data/uris",
        "/helpdesk/admin/organisations?q=hill",
        f"/helpdesk/admin/organisations/{school.public_id}",
        f"/helpdesk/admin/organisations/{school.public_id}/edit",
        "/helpdesk/admin/staff",
        f"/helpdesk/admin/staff/{admin.sub}",
        "/helpdesk/reports",
        f"/helpdesk/reports/{school.public_id}/{utcnow().astimezone(audit_log.UK):%Y-%m}",
    ):
        page.goto(path)
        assert page.locator("h1").count() == 1, path
        assert_accessible(page)
    assert "Account unlocked by the helpdesk" in page.inner_text("main")
