"""A Core statement run straight on the database driver, for the few hottest statements.

Why (issue 4): the machine lane's refresh is one statement (``tokens.rotate_if_usable``),
and through ``Connection.execute`` SQLAlchemy's per-execution work (cache key, execution
context, result metadata, row processing) cost more than the statement itself: 0.22 ms of
CPU against 0.09 ms for the same SQL on the psycopg connection, in a tight loop on this
machine (bench/bench_grant_steps.py measures it inside a grant).

What keeps this from being a second, hand-written form of the statement: the SQL is
SQLAlchemy's own compilation of the Core statement for the connection's dialect, and every
parameter and column value goes through its column type's own bind and result processors
(:meth:`TypeEngine.bind_processor`, :meth:`TypeEngine.result_processor` of the type's
:meth:`~TypeEngine.dialect_impl`), so
:class:`~idp.models.base.UTCDateTime`, JSON and the string enums convert exactly as they do
everywhere else. Only the execution skips SQLAlchemy. A driver error that means the
connection is broken invalidates it, as SQLAlchemy would, so the pool does not hand it out
again.

Use it only for a statement measured to need it, with named bind parameters, returning at
most one row, on PostgreSQL (psycopg takes the compiled ``%(name)s`` parameters as they are).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

Processor = Callable[[Any], Any] | None


class DirectStatement:
    """``statement`` compiled once per dialect, executed on the DBAPI connection."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, dict[str, Processor], list[Processor]]] = {}

    def first(
        self, connection: Connection, parameters: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row (converted by the columns' types), or None. Autocommit connections
        only: the driver runs the statement outside SQLAlchemy's transaction bookkeeping."""
        if connection.dialect.driver != "psycopg":
            raise NotImplementedError("DirectStatement runs on psycopg only")
        sql, binds, results = self._compile(connection.dialect)
        values = {
            name: (process(value) if (process := binds.get(name)) else value)
            for name, value in parameters.items()
        }
        driver = connection.connection.driver_connection
        assert driver is not None
        try:
            row: Sequence[Any] | None = driver.execute(sql, values).fetchone()
        except connection.dialect.loaded_dbapi.Error as error:
            if connection.dialect.is_disconnect(error, driver, None):
                connection.invalidate(error)
            raise
        if row is None:
            return None
        return tuple(
            process(value) if process else value
            for process, value in zip(results, row, strict=True)
        )

    def _compile(self, dialect: Dialect) -> tuple[str, dict[str, Processor], list[Processor]]:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            done = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            # dialect_impl: the type as this dialect runs it (JSONB for JSON on PostgreSQL).
            binds = {
                name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                for name, bind in done.binds.items()
            }
            columns = self.statement.selected_columns  # type: ignore[attr-defined]
            results = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ]
            compiled = self._compiled[dialect.name] = (str(done), binds, results)
        return compiled
