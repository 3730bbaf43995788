"""An `AsyncConnection` stand-in over a synchronous connection, for ledger writes that run in one go.

Ledger writes and their `also=` callbacks are coroutines written against `AsyncConnection`. Each of their
statements through SQLAlchemy's async layer costs a greenlet of its own; on a synchronous connection the
whole write costs none (SQLite's batch writer, ledger/sqlite_writer.py) or one (PostgreSQL: the write runs
inside `AsyncConnection.run_sync`, its statements switch to the event loop for the driver's I/O from
within that one greenlet). `run_to_end` drives such a coroutine to its end without an event loop: it must
await nothing but this stand-in.

This module must not import `proxy` or `x402`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["SyncOnLoopConnection", "run_to_end"]

T = TypeVar("T")


class SyncOnLoopConnection:
    """The part of `AsyncConnection` that ledger writes and their `also=` callbacks use, over a synchronous
    connection inside a ledger write's transaction. Awaiting any of these never suspends."""

    def __init__(self, connection: sa.Connection) -> None:
        self.sync_connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> sa.CursorResult[Any]:
        return self.sync_connection.execute(statement, parameters, **kwargs)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> sa.CursorResult[Any]:
        return self.sync_connection.exec_driver_sql(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        return self.sync_connection.scalar(statement, parameters, **kwargs)

    async def scalars(self, statement: Any, parameters: Any = None, **kwargs: Any) -> sa.ScalarResult[Any]:
        return self.sync_connection.scalars(statement, parameters, **kwargs)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(self.sync_connection, *args, **kwargs)

    def in_transaction(self) -> bool:
        return self.sync_connection.in_transaction()

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A SAVEPOINT: released when the block ends normally, rolled back when it raises."""
        nested = self.sync_connection.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            raise
        nested.commit()


def run_to_end(connection: sa.Connection, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work(facade)` run to its end synchronously on `connection` (for `AsyncConnection.run_sync`)."""
    coroutine = cast(Coroutine[Any, Any, T], work(cast(AsyncConnection, SyncOnLoopConnection(connection))))
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise RuntimeError("a ledger write awaited something other than its connection")
