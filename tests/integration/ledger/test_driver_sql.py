"""`DriverStatement` sends the driver exactly what SQLAlchemy's own execution of the statement sends (the
same SQL, the same processed values, one execute or one executemany) and gets the same rows back, on SQLite
and on PostgreSQL; where that cannot be exact (results converted by a type, a column filled by a Python-side
default, an empty IN list) it leaves the statement to SQLAlchemy (ledger/driver_sql.py).

Method: every statement runs twice in a transaction that is rolled back, once through SQLAlchemy and once
through `DriverStatement`, with a `before_cursor_execute` listener recording what reached the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger import store
from ledger.driver_sql import DriverStatement

Sent = list[tuple[str, list[tuple[Any, ...]], bool]]

ACCOUNT_SUMS = {"debits_posted": 5, "credits_posted": 7, "debits_pending": 0, "credits_pending": 3}
EXTRAS = sa.MetaData()
# A table whose rows need SQLAlchemy: a Python-side default and a JSON column (converted on the way out).
NOTES = sa.Table(
    "driver_sql_notes",
    EXTRAS,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, default=lambda: "python-default"),
)


@contextmanager
def recorded(engine: AsyncEngine) -> Iterator[Sent]:
    sent: Sent = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        rows = list(parameters) if many else [parameters]
        sent.append((statement, [tuple(row) for row in rows], many))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def accounts(conn: AsyncConnection) -> list[int]:
    # Ids given: a PostgreSQL sequence does not roll back, and both runs must see the same rows.
    ids = [101, 102, 103]
    await conn.execute(
        store.ACCOUNTS.insert(),
        [
            {"id": account_id, "name": f"asset:{name}", "type": "asset", "unit": "USD", "flags": 0}
            | {"created_at_unix_ms": 1, **ACCOUNT_SUMS}
            for account_id, name in zip(ids, "abc", strict=True)
        ],
    )
    return ids


async def both_ways(
    engine: AsyncEngine,
    statement: DriverStatement,
    parameters: Callable[[list[int]], Any],
) -> tuple[Sent, Sent, list[Any], list[Any]]:
    """(sent by SQLAlchemy, sent by DriverStatement, the rows of each); each in a rolled-back transaction."""
    outcomes = []
    for through_driver in (False, True):
        async with engine.connect() as conn:
            transaction = await conn.begin()
            ids = await accounts(conn)
            with recorded(engine) as sent:
                given = parameters(ids)
                if through_driver:
                    result = await statement.execute(conn, given)
                else:
                    result = await conn.execute(statement.statement, given)
                rows = [dict(row) for row in result.mappings().all()] if result.returns_rows else []
            await transaction.rollback()
        outcomes.append((sent, rows))
    (by_sqlalchemy, rows_sqlalchemy), (by_driver, rows_driver) = outcomes
    return by_sqlalchemy, by_driver, rows_sqlalchemy, rows_driver


def sums(account_id: int, bump: int) -> dict[str, Any]:
    return {"account_id": account_id, **{name: value + bump for name, value in ACCOUNT_SUMS.items()}}


CASES: dict[str, tuple[DriverStatement, Callable[[list[int]], Any]]] = {
    "update one": (store._WRITE_SUMS, lambda ids: sums(ids[0], 1)),
    "update many": (store._WRITE_SUMS, lambda ids: [sums(i, 2) for i in ids]),
    "lock by ids and names": (
        store._lock_accounts_query(by_ids=True, by_names=True, for_update=False),
        lambda ids: {"ids": ids[:2], "names": ["asset:c"]},
    ),
    "lock for update": (
        store._lock_accounts_query(by_ids=False, by_names=True, for_update=True),
        lambda ids: {"ids": [], "names": ["asset:a", "asset:b"]},
    ),
    "one by name": (
        store._select_by(store.ACCOUNTS, "name", for_update=False),
        lambda ids: {"value": "asset:b"},
    ),
    "due holds (a list used twice, literals)": (
        store._DUE_HOLD_IDS,
        lambda ids: {"names": ["asset:a", "asset:c"], "now": 10},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_driver_receives_what_sqlalchemy_sends(ledger_engine: AsyncEngine, case: str) -> None:
    statement, parameters = CASES[case]
    by_sqlalchemy, by_driver, rows_sqlalchemy, rows_driver = await both_ways(
        ledger_engine, statement, parameters
    )
    assert len(by_sqlalchemy) == 1
    assert by_driver == by_sqlalchemy
    assert rows_driver == rows_sqlalchemy


async def test_an_insert_returns_the_id_sqlalchemy_would(ledger_engine: AsyncEngine) -> None:
    row = {
        "idempotency_key": "k",
        "body_hash": "h",
        "code": "test",
        "external_ref": None,
        "metadata_json": {"note": "é", "n": 1},
        "hold_id": None,
        "created_at_unix_ms": 5,
    }
    ids = []
    for through_driver in (False, True):
        async with ledger_engine.connect() as conn:
            transaction = await conn.begin()
            with recorded(ledger_engine) as sent:
                if through_driver:
                    ids.append(await store._INSERT_TRANSACTION.inserted_id(conn, row))
                else:
                    key = (await conn.execute(store._INSERT_TRANSACTION.statement, row)).inserted_primary_key
                    assert key is not None
                    ids.append(key[0])
            stored = (await conn.execute(sa.select(store.TRANSACTIONS))).mappings().one()
            assert stored["metadata_json"] == {"note": "é", "n": 1}
            assert stored["id"] == ids[-1]
            await transaction.rollback()
        assert len(sent) == 1
    assert isinstance(ids[1], int)


@pytest.mark.parametrize(
    ("why", "statement", "parameters"),
    [
        ("a JSON result column", DriverStatement(sa.select(NOTES)), {}),
        ("a Python-side default", DriverStatement(NOTES.insert()), {"body": {"a": 1}}),
        (
            "an empty IN list",
            DriverStatement(sa.select(NOTES.c.id).where(NOTES.c.id.in_(sa.bindparam("ids", expanding=True)))),
            {"ids": []},
        ),
    ],
)
async def test_what_needs_sqlalchemy_is_left_to_it(
    ledger_engine: AsyncEngine, why: str, statement: DriverStatement, parameters: dict[str, Any]
) -> None:
    async with ledger_engine.begin() as conn:
        await conn.run_sync(EXTRAS.create_all)
        await conn.execute(NOTES.insert(), {"body": {"x": [1, 2]}})
        result = await statement.execute(conn, parameters)
        # PostgreSQL's driver decodes JSON itself (SQLAlchemy's asyncpg dialect registers the codec).
        sqlalchemy_converts = "JSON" not in why or conn.dialect.name == "sqlite"
        assert statement._plans
        assert (set(statement._plans.values()) == {None}) == sqlalchemy_converts, why
        if result.returns_rows:
            rows = result.all()
            if "JSON" in why:
                assert rows[0].body == {"x": [1, 2]}
            else:
                assert rows == []
        kinds = (await conn.execute(sa.select(NOTES.c.kind))).scalars().all()
        assert set(kinds) == {"python-default"}
        await conn.run_sync(EXTRAS.drop_all)
