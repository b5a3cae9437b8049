"""The one place that commits: a unit of work around a block of service calls.

Either everything in the block is written, or (on any exception) nothing is. Services add
and flush; only this commits. Nothing is ever half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
