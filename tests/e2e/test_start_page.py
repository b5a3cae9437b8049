"""A person opening the service in a real browser sees the GOV.UK start page."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import assert_accessible

pytestmark = pytest.mark.e2e


def test_start_page_in_chromium(page):
    page.goto("/")
    assert page.title().startswith("Sign in to your school's services")
    assert page.locator("h1").inner_text() == "Sign in to your school's services"
    # GOV.UK Frontend's JavaScript ran (module loaded under our CSP, nonce on the inline script).
    assert "govuk-frontend-supported" in page.locator("body").get_attribute("class")
    assert_accessible(page)


def test_not_found_page_in_chromium(page):
    response = page.goto("/nowhere")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert_accessible(page)


def test_no_csp_violations_on_the_start_page(page):
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto("/")
    page.wait_for_load_state("networkidle")
    assert not [m for m in messages if "Content Security Policy" in m]
