"""The one place that commits: a unit of work around a block of service calls.

Either everything in the block is written, or (on any exception) nothing is. Services add
and flush; only this commits. Nothing is ever half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Executable, inspect
from sqlalchemy.orm import Session, scoped_session

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


def read_outside_transaction(
    statement: Executable, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of a read-only ORM ``statement``, sent without BEGIN and ROLLBACK.

    Issue 3: on PostgreSQL, the request session's first query costs three round trips (BEGIN,
    the query, and the ROLLBACK when the connection goes back to the pool). This runs the
    one query on an autocommit connection instead (a single statement is atomic anyway), then
    attaches the loaded objects to the request session as if it had loaded them (no SQL), so
    later changes to them are written by :func:`transaction` as usual. Only for a request's
    first look-up of those objects: an object already in the session is returned as it is.
    """
    with (
        db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        Session(bind=connection, expire_on_commit=False) as reader,
    ):
        row = reader.execute(statement, params).first()
    if row is None:
        return None
    # The reader has closed, so its objects are detached with their attributes loaded.
    session = db.session
    values: list[Any] = []
    for value in row:
        state = inspect(value, raiseerr=False)
        if state is not None and getattr(state, "key", None) is not None:
            existing = session.identity_map.get(state.key)
            if existing is not None:
                value = existing
            else:
                session.add(value)
        values.append(value)
    return tuple(values)
