"""`run_to_end`: a ledger write runs to its end synchronously over the stand-in connection, or is refused."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.sync_connection import run_to_end


def test_a_write_that_awaits_only_its_connection_runs_to_its_end() -> None:
    engine = sa.create_engine("sqlite://")

    async def work(connection: AsyncConnection) -> int:
        await connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        await connection.execute(sa.text("INSERT INTO t VALUES (2), (3)"))
        return int((await connection.scalar(sa.text("SELECT sum(x) FROM t"))) or 0)

    with engine.begin() as connection:
        assert run_to_end(connection, work) == 5


def test_a_write_that_awaits_anything_else_is_refused() -> None:
    engine = sa.create_engine("sqlite://")

    async def work(connection: AsyncConnection) -> None:
        await connection.execute(sa.text("SELECT 1"))
        await asyncio.sleep(0)

    with engine.begin() as connection, pytest.raises(RuntimeError, match="awaited something other"):
        run_to_end(connection, work)
