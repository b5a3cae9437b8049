"""Issue 8 in headless Chromium: a helpdesk admin imports a school's staff from Authentix
(upload, check, import) without JavaScript tricks; axe-core checks the form and both results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from idp.models import StaffRole
from tests.authentix import GOOD, seed
from tests.e2e.conftest import assert_accessible, sign_in_staff_with_new_key
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.e2e


def test_admin_checks_then_imports_an_authentix_file(key_page: Any, tmp_path: Path) -> None:
    page = key_page
    seed()
    make_user(email="admin@helpdesk.example", staff_role=StaffRole.HELPDESK_ADMIN)
    staff_file = tmp_path / "hill-top.csv"
    staff_file.write_text(GOOD + "100001,not-an-email,Bad,Row,no,\r\n", encoding="cp1252")

    sign_in_staff_with_new_key(page, "admin@helpdesk.example", DEFAULT_PASSWORD)
    page.goto("/helpdesk/")
    page.click("a:has-text('Import from Authentix')")
    assert page.locator("h1").inner_text() == "Import staff from Authentix"
    assert_accessible(page)

    page.click("button:has-text('Check file')")  # nothing chosen: an error linked to the field
    assert "Select a CSV file" in page.inner_text(".govuk-error-summary")
    assert_accessible(page)

    page.set_input_files("#file", str(staff_file))
    page.click("button:has-text('Check file')")
    assert page.locator("h1").inner_text() == "Check what the import will change"
    main = page.inner_text("main")
    assert "Rows with a problem" in main
    assert "grace.hopper@riverside.sch.uk" in main
    assert_accessible(page)

    page.click("button:has-text('Import 4 rows')")
    assert "Import finished" in page.locator("h1").inner_text()
    invitations = page.locator(".govuk-summary-list__row", has_text="Invitations sent")
    assert invitations.locator("dd").inner_text().strip() == "3"
    assert_accessible(page)
