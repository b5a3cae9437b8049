"""Your services (issue 7): signing in at the provider directly lands on a page listing the
person's services per organisation, linking to each service's start URL, plus the services they
could request, which lead to a request form."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from idp.extensions import db
from idp.models import AccessPolicy, Service, ServiceRole
from tests.access_helpers import grant, member, school
from tests.factories import SignIn, csrf_token, make_user, page_text
from tests.mailbox import emails_to


def service(client_id: str, name: str, policy: AccessPolicy = AccessPolicy.GRANTED) -> Service:
    found = Service(
        client_id=client_id,
        name=name,
        description=f"What {name} does.",
        start_url=f"https://{client_id}.example/",
        access_policy=policy,
    )
    found.roles = [ServiceRole(code="user", name="User"), ServiceRole(code="boss", name="Boss")]
    db.session.add(found)
    db.session.commit()
    return found


@pytest.fixture
def ada(app):
    collect, pensions = service("collect", "Collect"), service("pensions", "Teacher Pensions")
    service("news", "School news", AccessPolicy.OPEN)
    hilltop = school("Hill Top Primary", "100001")
    riverside = school("Riverside Academy", "100002")
    person = make_user(email="ada@hilltop.example")
    grant(person, hilltop, collect, ["boss"])
    grant(person, riverside, pensions, ["user"])
    sam = make_user(email="sam@hilltop.example", given_name="Sam", family_name="Patel")
    member(sam, hilltop, approver=True)
    return person, hilltop, riverside


def sections(response) -> dict[str, str]:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return {
        s.find("h2").get_text(strip=True): " ".join(s.get_text(" ").split())
        for s in soup.select("section.app-organisation-services")
    }


def test_signing_in_directly_lands_on_your_services(client, ada):
    finish = SignIn(client).completed("ada@hilltop.example")
    assert finish.headers["Location"] == "/services"
    page = client.get("/services")
    assert page.status_code == 200
    groups = sections(page)
    assert list(groups) == ["Hill Top Primary", "Riverside Academy"]
    assert "Collect" in groups["Hill Top Primary"]
    assert "Your roles: Boss" in groups["Hill Top Primary"]
    assert "What Collect does." in groups["Hill Top Primary"]
    assert "Request access to Teacher Pensions for Hill Top Primary" in groups["Hill Top Primary"]
    assert "Teacher Pensions" in groups["Riverside Academy"]
    assert "Request access to Collect for Riverside Academy" in groups["Riverside Academy"]
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    link = soup.find("a", href=lambda href: href and href.startswith("/services/collect/open/"))
    assert link.get_text(" ", strip=True) == "Collect for Hill Top Primary"
    opened = client.get(link["href"])  # remembers Hill Top as the choice, then the service
    assert opened.headers["Location"] == "https://collect.example/"
    assert "School news" in page_text(page)  # open services, once


def test_request_a_service_from_your_services(client, ada):
    _, hilltop, _ = ada
    SignIn(client).completed("ada@hilltop.example")
    form = client.get(f"/services/pensions/request-access?organisation={hilltop.public_id}")
    assert form.status_code == 200
    text = page_text(form)
    assert "Request access to Teacher Pensions" in text
    assert "Approver: Sam Patel" in text
    stranger = school("Somewhere Else", "999999")
    forged = client.post(
        "/services/pensions/request-access",
        data={"organisation": stranger.public_id, "csrf_token": csrf_token(form)},
    )
    assert forged.status_code == 400
    assert "There is a problem" in page_text(forged)
    sent = client.post(
        "/services/pensions/request-access",
        data={"organisation": hilltop.public_id, "csrf_token": csrf_token(form)},
    )
    assert "Access requested" in page_text(sent)
    assert "your approver, Sam Patel" in page_text(sent)
    assert emails_to("sam@hilltop.example")[0].template == "access_requested"
    assert (
        "requested, waiting for an approver"
        in sections(client.get("/services"))["Hill Top Primary"]
    )


def test_nothing_to_request_and_unknown_services(client, ada):
    SignIn(client).completed("ada@hilltop.example")
    assert client.get("/services/nonesuch/request-access").status_code == 404
    news = client.get("/services/news/request-access")
    assert "You cannot request access to School news" in page_text(news)


def test_approvers_see_a_link_to_their_requests(client, ada):
    _, hilltop, _ = ada
    SignIn(client).completed("sam@hilltop.example")
    page = client.get("/services")
    assert f"/organisations/{hilltop.public_id}/requests" in page.get_data(as_text=True)


def test_signed_out_goes_to_sign_in(client):
    response = client.get("/services")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]
