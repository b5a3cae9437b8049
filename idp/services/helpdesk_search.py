"""The helpdesk console's search: one box that finds people and organisations (issue 8, K02).

What a helpdesk agent types, and what it finds:

- a whole email address: that person alone (exact match; if nobody has it, it is treated
  as a fragment);
- part of an email address: every person whose email contains the text (text with an @ is
  never an organisation's name, so organisations are not searched);
- a name, or part of one, however punctuated: "o'brien", "OBrien", "smith jones" and
  "Smith-Jones" match alike, because names are compared by their search key
  (:mod:`idp.models.search`: lower case, no spaces, hyphens, apostrophes, full stops, commas);
- a URN or UKPRN (5 to 8 digits): that organisation, and its people;
- part of an organisation's name: the organisations (each one's page lists its people).

Exact matches come first. Results come 25 a page, sorted by family name and given name
(organisations by name), up to :data:`MAX_RESULTS` matches; a search that matches more says
so and the agent adds more of the name. The cap is what keeps a common surname fast among a
million people: the database stops after the cap's worth of matches instead of reading and
sorting every Smith, and nothing counts all the matches.

On PostgreSQL the fragment matches (``LIKE '%text%'``) are served by pg_trgm GIN indexes
(migration 0005); SQLite scans, which is fine for development and tests. A fragment must have
at least :data:`MIN_FRAGMENT` characters, since shorter ones have no trigrams to look up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

from sqlalchemy import ColumnElement, Row, Select, func, or_, select

from idp.extensions import db
from idp.models import Membership, Organisation, User
from idp.models.search import organisation_name_key, text_key, user_name_key

PAGE_SIZE: Final = 25
MIN_FRAGMENT: Final = 3
MAX_QUERY: Final = 200
#: The most matches a search lists (10 pages); past that the agent narrows the search.
MAX_RESULTS: Final = 250
MAX_PAGE: Final = MAX_RESULTS // PAGE_SIZE
_DIGITS = re.compile(r"\d{5,8}")  # URNs are 6 digits, UKPRNs 8
_SPACE = re.compile(r"\s")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

T = TypeVar("T")

if TYPE_CHECKING:
    #: A row or query of any columns (SQLAlchemy 2.1 types each column).
    AnyRow: TypeAlias = Row[*tuple[Any, ...]]
    AnySelect: TypeAlias = Select[*tuple[Any, ...]]


class QueryTooShort(ValueError):
    """The text has too few letters or digits to search for (shown to the agent)."""


@dataclass(frozen=True)
class PersonHit:
    """One person in the results: enough to tell people apart, nothing secret."""

    sub: str
    name: str
    email: str
    status: str
    staff_role: str | None
    organisations: list[str]
    exact: bool = False


@dataclass(frozen=True)
class OrganisationHit:
    public_id: str
    name: str
    type: str
    status: str
    urn: str | None
    ukprn: str | None
    postcode: str | None
    exact: bool = False


@dataclass(frozen=True)
class ResultPage(Generic[T]):
    """One page of results; ``has_next`` says whether another page follows."""

    items: list[T] = field(default_factory=list)
    page: int = 1
    has_next: bool = False
    #: More than MAX_RESULTS matched: only the first MAX_RESULTS are listed.
    capped: bool = False

    @property
    def has_previous(self) -> bool:
        return self.page > 1


@dataclass(frozen=True)
class SearchResults:
    query: str
    people: ResultPage[PersonHit]
    organisations: ResultPage[OrganisationHit]


def _like_fragment(text: str) -> str:
    """``%text%`` with LIKE's own wildcards escaped (an agent's ``_`` is a character)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page_number(page: int) -> int:
    return min(max(page, 1), MAX_PAGE)


def search(query: str, *, page: int = 1, organisation_page: int = 1) -> SearchResults:
    """Find people and organisations for the text an agent typed (K02).

    Raises :class:`QueryTooShort` when the text has fewer than :data:`MIN_FRAGMENT` letters
    or digits and is not an exact identifier.
    """
    text = " ".join(query.split())[:MAX_QUERY]
    lowered = text.lower()
    key = text_key(text)
    exact_id = text if _DIGITS.fullmatch(text) else None
    if len(key) < MIN_FRAGMENT and exact_id is None:
        raise QueryTooShort(text)
    people = _people(lowered, key, exact_id, _page_number(page))
    if "@" in text:  # an email address or part of one: no organisation's name has an @
        organisations: ResultPage[OrganisationHit] = ResultPage(page=organisation_page)
    else:
        organisations = _organisations(key, exact_id, _page_number(organisation_page))
    return SearchResults(query=text, people=people, organisations=organisations)


# -- people --------------------------------------------------------------------------------
# Each list is one query that selects just what a result shows (with each person's
# organisations), sorts and pages in the database: a search costs two round trips.

_PERSON_COLUMNS = (
    User.id,
    User.family_name,
    User.given_name,
    User.sub,
    User.email,
    User.status,
    User.staff_role,
)
_NAMES_SEPARATOR: Final = "\x1f"  # never in a name


def _people(lowered: str, key: str, exact_id: str | None, page: int) -> ResultPage[PersonHit]:
    if _EMAIL.fullmatch(lowered):
        rows, _, _ = _capped(select(*_PERSON_COLUMNS).where(User.email == lowered), 1)
        if rows:
            # A whole email address that belongs to someone: that is who the agent wants.
            # (Its fragments would match everyone at the same school, at a big scan's cost.)
            items = [_person(row, exact=True) for row in rows] if page == 1 else []
            return ResultPage(items=items, page=page)
    if exact_id is not None:
        # The people of the organisation with that URN or UKPRN (K02: "find by URN").
        statement = (
            select(*_PERSON_COLUMNS)
            .join(Membership, Membership.user_id == User.id)
            .join(Organisation, Organisation.id == Membership.organisation_id)
            .where(or_(Organisation.urn == exact_id, Organisation.ukprn == exact_id))
            .distinct()  # a UKPRN may be shared by a trust's schools
        )
    else:
        conditions: list[ColumnElement[bool]] = []
        if not _SPACE.search(lowered):  # an email never has a space: skip that index
            conditions.append(User.email.like(_like_fragment(lowered), "\\"))
        if len(key) >= MIN_FRAGMENT:
            conditions.append(user_name_key().like(_like_fragment(key), "\\"))
        statement = select(*_PERSON_COLUMNS).where(or_(*conditions))
    rows, has_next, capped = _capped(statement, page)
    items = [_person(row, exact=False) for row in rows]
    return ResultPage(items=items, page=page, has_next=has_next, capped=capped)


def _organisation_names(user_id: ColumnElement[int]) -> ColumnElement[str | None]:
    """The names of a person's organisations, joined by :data:`_NAMES_SEPARATOR`."""
    return (
        select(func.aggregate_strings(Organisation.name, _NAMES_SEPARATOR))
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.user_id == user_id)
        .scalar_subquery()
    )


def _capped(statement: AnySelect, page: int) -> tuple[list[AnyRow], bool, bool]:
    """One page of the first :data:`MAX_RESULTS` matches of ``statement``, sorted by its
    second and third columns (case-insensitively) then its first (an id); whether another
    page follows; and whether there were more matches than the cap.

    The database stops collecting matches at the cap, so a common name never makes it read
    and sort every match; a search that hits the cap says so, and the agent adds more of the
    name or email. People rows get their organisations' names, for the page's rows only.
    """
    matches = statement.cte("matches")
    if db.session.get_bind().dialect.name == "postgresql":
        # A materialised CTE is planned for all its rows, so PostgreSQL takes the trigram
        # indexes, and read lazily, so it still stops at the cap. A plain LIMIT lets the
        # planner gamble on a sequential scan finding the cap's worth early, which for a rare
        # name means reading most of a million rows (0.6 s instead of 10 ms in the bench).
        matches = matches.prefix_with("MATERIALIZED")
    first = select(*matches.c).limit(MAX_RESULTS + 1).subquery("first")
    columns = list(first.c)
    extra = (
        [_organisation_names(first.c.id).label("organisation_names")] if "sub" in first.c else []
    )
    query = (
        select(*columns, func.count().over().label("matched"), *extra)
        .order_by(func.lower(columns[1]), func.lower(columns[2]), columns[0])
        .offset((page - 1) * PAGE_SIZE)
        .limit(max(0, min(PAGE_SIZE, MAX_RESULTS - (page - 1) * PAGE_SIZE)))
    )
    rows = list(db.session.execute(query))
    matched = min(rows[0].matched, MAX_RESULTS + 1) if rows else 0
    shown = min(matched, MAX_RESULTS)
    return rows, shown > page * PAGE_SIZE, matched > MAX_RESULTS


def _person(row: AnyRow, *, exact: bool) -> PersonHit:
    names = row.organisation_names
    return PersonHit(
        sub=row.sub,
        name=f"{row.given_name} {row.family_name}".strip(),
        email=row.email,
        status=str(row.status),
        staff_role=str(row.staff_role) if row.staff_role else None,
        organisations=sorted(names.split(_NAMES_SEPARATOR)) if names else [],
        exact=exact,
    )


# -- organisations ---------------------------------------------------------------------------

_ORGANISATION_COLUMNS = (
    Organisation.id,
    Organisation.name,
    Organisation.urn,
    Organisation.public_id,
    Organisation.type,
    Organisation.status,
    Organisation.ukprn,
    Organisation.postcode,
)


def _organisations(key: str, exact_id: str | None, page: int) -> ResultPage[OrganisationHit]:
    if exact_id is not None:
        rows = list(
            db.session.execute(
                select(*_ORGANISATION_COLUMNS)
                .where(or_(Organisation.urn == exact_id, Organisation.ukprn == exact_id))
                .order_by(Organisation.name, Organisation.id)
                .limit(PAGE_SIZE)
            )
        )
        items = [_organisation(row, exact=True) for row in rows] if page == 1 else []
        return ResultPage(items=items, page=page)
    rows, has_next, capped = _capped(
        select(*_ORGANISATION_COLUMNS).where(
            organisation_name_key().like(_like_fragment(key), "\\")
        ),
        page,
    )
    items = [_organisation(row, exact=False) for row in rows]
    return ResultPage(items=items, page=page, has_next=has_next, capped=capped)


def _organisation(row: AnyRow, *, exact: bool) -> OrganisationHit:
    return OrganisationHit(
        public_id=row.public_id,
        name=row.name,
        type=str(row.type),
        status=str(row.status),
        urn=row.urn,
        ukprn=row.ukprn,
        postcode=row.postcode,
        exact=exact,
    )


__all__ = [
    "PAGE_SIZE",
    "OrganisationHit",
    "PersonHit",
    "QueryTooShort",
    "ResultPage",
    "SearchResults",
    "search",
]
