"""K02: the helpdesk's one search box, tolerant of case, partial words and punctuation.

Runs on both back ends: on PostgreSQL through the pg_trgm indexes of migration 0005, on
SQLite through its LIKE fallback; the same expectations hold for both.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from idp.models import StaffRole, UserStatus
from idp.services import helpdesk_search
from idp.services.helpdesk_search import PAGE_SIZE, QueryTooShort, search
from tests.console.helpers import sign_in_staff
from tests.console.people import join, make_organisation
from tests.factories import make_user, page_text


def people(query: str, page: int = 1) -> list[str]:
    return [p.email for p in search(query, page=page).people.items]


def organisations(query: str) -> list[str]:
    return [o.name for o in search(query).organisations.items]


@pytest.fixture
def staff_room(app):
    """A school's staff with awkward names, and someone elsewhere."""
    school = make_organisation("St Mary's C of E Primary School", urn="100123", ukprn="10012345")
    other = make_organisation("Oakwood-Hill Academy", urn="100456")
    found = {
        "obrien": make_user(
            email="siobhan.obrien@stmarys.example", given_name="Siobhán", family_name="O'Brien"
        ),
        "smithjones": make_user(
            email="sj@stmarys.example", given_name="Anne-Marie", family_name="Smith-Jones"
        ),
        "curly": make_user(
            email="dsouza@stmarys.example", given_name="Priya", family_name="D\u2019Souza"
        ),
        "ada": make_user(email="ada.lovelace@oakwood.example"),
    }
    for key in ("obrien", "smithjones", "curly"):
        join(found[key], school)
    join(found["ada"], other)
    return found


@pytest.mark.parametrize(
    "query",
    ["O'Brien", "obrien", "OBRIEN", "o brien", "O\u2019Brien", "Brie", "siobhán o'b"],
)
def test_surname_with_apostrophe_is_found_however_typed(staff_room, query):
    assert people(query) == ["siobhan.obrien@stmarys.example"]


@pytest.mark.parametrize("query", ["Smith-Jones", "smith jones", "smithjones", "Anne-Marie Smith"])
def test_hyphenated_names_are_found_with_or_without_the_hyphen(staff_room, query):
    assert people(query) == ["sj@stmarys.example"]


def test_typographic_apostrophe_in_the_record_matches_a_plain_one(staff_room):
    assert people("D'Souza") == ["dsouza@stmarys.example"]


def test_partial_email_and_exact_email(staff_room):
    assert people("LOVELACE@oak") == ["ada.lovelace@oakwood.example"]
    exact = search("Ada.Lovelace@Oakwood.example").people.items
    assert [p.email for p in exact] == ["ada.lovelace@oakwood.example"]
    assert exact[0].exact


def test_a_whole_email_address_finds_only_its_owner(app):
    make_user(email="aaron.lee@school.example", given_name="Aaron", family_name="Abbott")
    make_user(email="lee@school.example", given_name="Zed", family_name="Zimmer")
    found = search("Lee@School.example").people.items
    assert [(p.email, p.exact) for p in found] == [("lee@school.example", True)]
    # Nobody has this address: it is searched for as a fragment instead.
    assert people("lee@school.exam") == ["aaron.lee@school.example", "lee@school.example"]


def test_more_matches_than_the_cap_are_flagged(app, monkeypatch):
    monkeypatch.setattr(helpdesk_search, "MAX_RESULTS", 3)
    for n in range(4):
        make_user(email=f"many{n}@school.example")
    found = search("many").people
    assert len(found.items) == 3
    assert found.capped


def test_urn_and_ukprn_find_the_organisation_and_its_people(staff_room):
    by_urn = search("100123")
    assert [o.name for o in by_urn.organisations.items] == ["St Mary's C of E Primary School"]
    assert by_urn.organisations.items[0].exact
    assert {p.email for p in by_urn.people.items} == {
        "siobhan.obrien@stmarys.example",
        "sj@stmarys.example",
        "dsouza@stmarys.example",
    }
    assert [o.urn for o in search("10012345").organisations.items] == ["100123"]


@pytest.mark.parametrize("query", ["st marys", "ST. MARY'S", "mary's c of e", "oakwood hill"])
def test_organisation_name_fragments(staff_room, query):
    assert len(organisations(query)) == 1


def test_an_organisation_is_found_by_one_word_of_its_name(staff_room):
    names = organisations("academy")
    assert names == ["Oakwood-Hill Academy"]


@pytest.mark.parametrize("query", ["", "  ", "ab", "o'b", "--"])
def test_too_short_a_query_is_refused(app, query):
    with pytest.raises(QueryTooShort):
        search(query)


def test_like_wildcards_are_plain_characters(app):
    make_user(email="percent@school.example", given_name="Per", family_name="Cent")
    assert people("%%%") == []
    assert people("___") == []


def test_people_are_paginated_25_a_page_in_name_order(app):
    for n in range(PAGE_SIZE + 3):
        make_user(email=f"p{n:02}@big.example", given_name="Pat", family_name=f"Ng{n:02}")
    first = search("@big.example")
    assert len(first.people.items) == PAGE_SIZE
    assert first.people.has_next
    assert [p.email for p in first.people.items][:2] == ["p00@big.example", "p01@big.example"]
    second = search("@big.example", page=2)
    assert [p.email for p in second.people.items] == [
        "p25@big.example",
        "p26@big.example",
        "p27@big.example",
    ]
    assert not second.people.has_next
    assert second.people.has_previous


# -- the page --------------------------------------------------------------------------------


def test_search_page_finds_a_person_and_links_to_them(client: FlaskClient, staff_room):
    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get("/helpdesk/search?q=o%27brien")
    assert response.status_code == 200
    text = page_text(response)
    assert "Siobhán O'Brien" in text
    assert "St Mary's C of E Primary School" in text
    assert f"/helpdesk/users/{staff_room['obrien'].sub}" in response.get_data(as_text=True)
    assert "Ada Lovelace" not in text


def test_search_page_explains_a_short_query(client: FlaskClient, app):
    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get("/helpdesk/search?q=ab")
    assert response.status_code == 200
    text = page_text(response)
    assert "There is a problem" in text
    assert "Enter at least 3 letters or numbers" in text
    assert 'href="#q"' in response.get_data(as_text=True)


def test_search_page_with_no_query_shows_the_box(client: FlaskClient, app):
    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get("/helpdesk/search")
    assert response.status_code == 200
    assert "There is a problem" not in page_text(response)
    assert 'name="q"' in response.get_data(as_text=True)


def test_search_page_links_to_the_next_page_and_keeps_the_query(client: FlaskClient, app):
    for n in range(PAGE_SIZE + 1):
        make_user(email=f"p{n:02}@big.example", status=UserStatus.INVITED)
    sign_in_staff(client, StaffRole.HELPDESK, email="agent@helpdesk.example")
    response = client.get("/helpdesk/search?q=big.example")
    html = response.get_data(as_text=True)
    assert "/helpdesk/search?q=big.example&amp;page=2#people" in html
    second = client.get("/helpdesk/search?q=big.example&page=2")
    assert "p25@big.example" in page_text(second)
    assert "p00@big.example" not in page_text(second)
    # Nonsense page numbers fall back to the first page rather than failing.
    assert client.get("/helpdesk/search?q=big.example&page=-3").status_code == 200
    assert client.get(f"/helpdesk/search?q=big.example&page={10**9}").status_code == 200
