"""idp/direct_statement.py: a statement run on the driver gives exactly what SQLAlchemy gives.

The two lane statements that use it are covered end to end by tests/oidc/test_user_grant_lane.py;
this pins down the conversions themselves, value by value, against ``Connection.execute``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import Boolean, Integer, String, bindparam, select

from idp.direct_statement import DirectStatement
from idp.extensions import db
from idp.models import RefreshToken, User, UserStatus
from idp.models.base import JSONType, UTCDateTime, str_enum
from tests.conftest import BACKEND
from tests.factories import make_user

pytestmark = pytest.mark.skipif(BACKEND != "server", reason="psycopg (PostgreSQL) only")

TYPED = select(
    bindparam("when", type_=UTCDateTime()).label("when"),
    bindparam("doc", type_=JSONType).label("doc"),
    bindparam("status", type_=str_enum(UserStatus, "user_status")).label("status"),
    bindparam("flag", type_=Boolean()).label("flag"),
    bindparam("count", type_=Integer()).label("count"),
    bindparam("text", type_=String()).label("text"),
)


@pytest.mark.parametrize(
    "values",
    [
        {
            "when": datetime(2026, 11, 25, 8, 30, 15, 123456, tzinfo=UTC),
            "doc": {"amr": ["pwd", "otp"], "n": 1},
            "status": UserStatus.DEACTIVATED,
            "flag": True,
            "count": 7,
            "text": "Ada O'Neill",
        },
        {"when": None, "doc": [], "status": None, "flag": None, "count": None, "text": None},
    ],
)
def test_typed_values_come_back_as_sqlalchemy_returns_them(
    app: Any, values: dict[str, Any]
) -> None:
    with app.app_context(), db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        direct = DirectStatement(TYPED).first(connection, values)
        expected = connection.execute(TYPED, values).first()
    assert expected is not None
    assert direct == tuple(expected)
    assert direct[0] == values["when"]  # aware UTC in, aware UTC out
    assert direct[2] is values["status"]  # the enum member, not its string


def test_a_row_of_a_table_reads_as_sqlalchemy_reads_it(app: Any) -> None:
    with app.app_context():
        user = make_user(email="ada@school.example")
        statement = select(User.id, User.sub, User.status, User.created_at).where(
            User.sub == bindparam("for_sub")
        )
        with db.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            direct = DirectStatement(statement).first(connection, {"for_sub": user.sub})
            expected = connection.execute(statement, {"for_sub": user.sub}).first()
            missing = DirectStatement(statement).first(connection, {"for_sub": "nobody"})
    assert expected is not None
    assert direct == tuple(expected)
    assert missing is None


def test_a_broken_connection_is_invalidated_not_returned_to_the_pool(app: Any) -> None:
    statement = select(RefreshToken.id).where(RefreshToken.token_hash == bindparam("h"))
    with app.app_context(), db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        killer = db.engine.connect()
        pid = connection.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        killer.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        killer.close()
        with pytest.raises(psycopg.OperationalError):  # the driver's own error, raised on
            DirectStatement(statement).first(connection, {"h": "x"})
        assert connection.invalidated  # so the pool will not hand the dead connection out
