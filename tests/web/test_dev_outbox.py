"""``/dev/outbox``: the development outbox page exists in development, and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask import Flask

from idp import create_app
from idp.extensions import db
from idp.logging import setup_logging
from idp.services import mail, outbox
from idp.services.transaction import transaction

START = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)
RESET_LINK = "http://localhost/reset-password/abc?step=1&x=2"
INVITE_LINK = "http://localhost/invitation/def"


def app_for(settings, env: str, instance: str) -> Iterator[Flask]:
    """A second app on the same database and store, as ``env`` would build it."""
    changed = settings.model_copy(update={"env": env, "instance_path": instance})
    other = create_app(changed)
    if "mailer" not in other.extensions:  # until create_app calls mail.init_app itself
        mail.init_app(other, changed)
    try:
        yield other
    finally:
        with other.app_context():
            db.engine.dispose()
        setup_logging(settings)  # production switched the log format to JSON


@pytest.fixture
def dev_app(app, settings, tmp_path) -> Iterator[Flask]:
    yield from app_for(settings, "development", str(tmp_path))


@pytest.fixture
def production_app(app, settings, tmp_path) -> Iterator[Flask]:
    yield from app_for(settings, "production", str(tmp_path))


def send_two_emails(dev_app: Flask) -> None:
    """Queue and deliver two emails through the real outbox, a minute apart."""
    with time_machine.travel(START, tick=False) as clock, dev_app.app_context():
        with transaction():
            outbox.enqueue_email(
                "jane@hill-school.sch.uk",
                "invitation",
                link=INVITE_LINK,
                expires_at=START + timedelta(days=7),
                inviter_name="<b>Ann</b>",
            )
        outbox.deliver_due()
        clock.shift(timedelta(minutes=1))
        with transaction():
            outbox.enqueue_email(
                "sam@hill-school.sch.uk",
                "password_reset",
                link=RESET_LINK,
                expires_at=START + timedelta(minutes=31),
            )
        outbox.deliver_due()


def test_outbox_page_lists_messages_newest_first_with_working_links(dev_app):
    send_two_emails(dev_app)

    response = dev_app.test_client().get("/dev/outbox")

    assert response.status_code == 200
    soup = BeautifulSoup(response.data, "html.parser")
    assert soup.h1.get_text(strip=True) == "Development outbox"
    assert soup.title.string.strip().startswith("Development outbox")
    subjects = [h.get_text(strip=True) for h in soup.select(".govuk-summary-card__title")]
    assert subjects == [
        "Reset your Secure Access password",
        "You've been invited to use Secure Access",
    ]
    cards = soup.select(".govuk-summary-card")
    assert "sam@hill-school.sch.uk" in cards[0].get_text()
    assert "5 December 2026 at 15:31:00 UTC" in cards[0].get_text()
    links = [a["href"] for a in soup.select(".govuk-summary-card__content a.govuk-link")]
    assert links == [RESET_LINK, INVITE_LINK]
    # Message text is shown as text, never as markup.
    assert "&lt;b&gt;Ann&lt;/b&gt;" in response.get_data(as_text=True)
    assert not soup.select(".govuk-summary-card b")


def test_one_message_has_its_own_page(dev_app):
    send_two_emails(dev_app)
    client = dev_app.test_client()
    index = BeautifulSoup(client.get("/dev/outbox").data, "html.parser")
    first = index.select_one(".govuk-summary-card__action a")["href"]

    response = client.get(first)

    assert response.status_code == 200
    soup = BeautifulSoup(response.data, "html.parser")
    assert soup.h1.get_text(strip=True) == "Reset your Secure Access password"
    assert soup.find("a", href=RESET_LINK)


@pytest.mark.parametrize(
    "name",
    ["no-such-message", "20261205T153000000000Z-invitation-00000000.eml", "..%2F..%2Fetc%2Fpasswd"],
)
def test_unknown_or_unsafe_message_names_are_not_found(dev_app, name):
    assert dev_app.test_client().get(f"/dev/outbox/{name}").status_code == 404


def test_an_empty_outbox_says_how_to_fill_it(dev_app):
    response = dev_app.test_client().get("/dev/outbox")
    assert response.status_code == 200
    assert b"There are no emails yet." in response.data


def test_outbox_page_does_not_exist_in_test(client):
    assert client.get("/dev/outbox").status_code == 404


def test_outbox_page_does_not_exist_in_production(production_app):
    client = production_app.test_client()
    assert client.get("/dev/outbox").status_code == 404
    assert "dev_outbox.index" not in production_app.view_functions
