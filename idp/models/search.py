"""Search keys and their indexes for the helpdesk console's search (issue 8, K02).

A person is found by typing part of their name however it is punctuated: "O'Brien",
"OBrien" and "o brien" all match, as do "Smith-Jones" and "smith jones". Both the stored
value and the typed text are reduced to a *search key*: lower case, without spaces,
hyphens, apostrophes, full stops or commas. The same SQL expression builds the index and the
query (PostgreSQL uses an expression index only for an identical expression), so it is
defined once, here.

On PostgreSQL the keys carry pg_trgm GIN indexes (migration 0005), which serve
``LIKE '%fragment%'`` over a million rows. SQLite has no pg_trgm: migration 0005 gives it only
the plain email index and its search scans (Alembic does not compare expression indexes on
SQLite, which cannot reflect them).
"""

from __future__ import annotations

from typing import Final, cast

from sqlalchemy import ColumnElement, Index, Table, func, literal_column

from idp.models.organisation import Organisation
from idp.models.user import User

#: Characters a search key drops (the right single quote is the typographic apostrophe).
IGNORED: Final = (" ", "-", "'", "\u2019", ".", ",")


def search_key(*parts: ColumnElement[str]) -> ColumnElement[str]:
    """SQL: the parts joined, lower-cased, with :data:`IGNORED` removed (immutable)."""
    expr: ColumnElement[str] = parts[0]
    for part in parts[1:]:
        expr = expr.op("||")(part)  # not concat(): that is only STABLE, unusable in an index
    expr = func.lower(expr)
    empty: ColumnElement[str] = literal_column("''")
    for char in IGNORED:
        # Literals, not bound parameters: the query must repeat the index's text exactly.
        expr = func.replace(expr, literal_column("'" + char.replace("'", "''") + "'"), empty)
    return expr


def text_key(value: str) -> str:
    """Python: the search key of typed text, built exactly as :func:`search_key` builds it."""
    key = value.lower()
    for char in IGNORED:
        key = key.replace(char, "")
    return key


USERS: Final = cast(Table, User.__table__)
ORGANISATIONS: Final = cast(Table, Organisation.__table__)


def user_name_key() -> ColumnElement[str]:
    return search_key(USERS.c.given_name, USERS.c.family_name)


def organisation_name_key() -> ColumnElement[str]:
    return search_key(ORGANISATIONS.c.name)


# ``_table``: SQLAlchemy cannot find the table inside these nested function calls by itself.
Index(
    "ix_users_name_key_trgm",
    user_name_key().label("name_key"),
    postgresql_ops={"name_key": "gin_trgm_ops"},
    _table=USERS,
    postgresql_using="gin",
)
Index(
    "ix_users_email_trgm",
    USERS.c.email,
    postgresql_ops={"email": "gin_trgm_ops"},
    postgresql_using="gin",
)
Index(
    "ix_organisations_name_key_trgm",
    organisation_name_key().label("name_key"),
    postgresql_ops={"name_key": "gin_trgm_ops"},
    _table=ORGANISATIONS,
    postgresql_using="gin",
)
