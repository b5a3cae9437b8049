"""The one place that commits: a unit of work around a block of service calls.

Either everything in the block is written, or (on any exception) nothing is. Services add
and flush; only this commits. Nothing is ever half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import scoped_session

from idp.extensions import db


@contextmanager
def transaction() -> Iterator[scoped_session[Any]]:
    session: scoped_session[Any] = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def insert_or_nothing(entity: Any, *conflict_columns: Any) -> Any:
    """``INSERT … ON CONFLICT (conflict_columns) DO NOTHING`` for the session's database.

    For an insert that may lose a race on a unique constraint (two people creating the same
    account or consent at once): the loser inserts nothing and its unit of work stays healthy,
    where a plain insert would fail it with an IntegrityError. A SAVEPOINT would do on
    PostgreSQL, but pysqlite commits an outermost SAVEPOINT on release, which could leave
    half-written work on SQLite. Both databases have the clause, and RETURNING.
    """
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(entity).on_conflict_do_nothing(index_elements=list(conflict_columns))
