"""Group commit for the ledger on SQLite: one writer per process, many requests' writes per transaction.

SQLite has one writer per database file, so concurrent ledger writes through the async engine queue on
`BEGIN IMMEDIATE`, each holding the write lock across a dozen aiosqlite thread hops. Here the writes of a
process go through one queue instead. A writer task takes everything queued (up to `BATCH_OPS_MAX`), opens
ONE transaction, runs each write in a SAVEPOINT of its own (a refused write, e.g. InsufficientFunds, rolls
back only itself; a write alone in its batch needs none), commits once, and only then answers every
caller: nothing is acknowledged before its COMMIT returned, so a write a caller saw succeed survives
`kill -9`.

The statements run on a dedicated synchronous connection (stdlib `sqlite3` under SQLAlchemy Core, compiled
statements cached) directly on the event loop: a local SQLite statement under a write lock already held
takes microseconds, much less than a thread hop. `BEGIN IMMEDIATE` is tried on the loop without waiting;
only when another process holds the lock does it wait (bounded by busy_timeout) on one worker thread.
`COMMIT` runs on the loop too: in WAL mode with synchronous=NORMAL (ledger/engine.py) it appends to the log
without an fsync and never waits for another connection. What does fsync, the checkpoint that copies the log
into the database file, is not left to the commit (`wal_autocheckpoint=0` on this connection): the writer
runs it on the thread every `CHECKPOINT_EVERY_BATCHES` batches, after answering that batch's callers. A write
is an async callable given `SyncOnLoopConnection`, which offers the subset of `AsyncConnection` that the
ledger and its `also=` callbacks use; its awaits never suspend.

A caller cancelled while its write is queued is dropped from the queue; once its batch has started, the
write commits with the batch (the caller no longer learns it).

This module must not import `proxy` or `x402`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import StaticPool

from ledger.engine import SQLITE_SYNCHRONOUS
from ledger.sync_connection import SyncOnLoopConnection

__all__ = ["BATCH_OPS_MAX", "SqliteBatchWriter"]

# Writes per transaction: bounds how long one batch holds the write lock.
BATCH_OPS_MAX = 256
# Batches between two checkpoints: a batch of one request's write adds a handful of pages to the log, so
# the log stays near SQLite's own autocheckpoint size (1,000 pages).
CHECKPOINT_EVERY_BATCHES = 64
T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass
class _Op:
    work: Callable[[AsyncConnection], Awaitable[Any]]
    future: asyncio.Future[Any]
    outcome: tuple[bool, Any] | None = None  # (succeeded, result or exception), set inside the batch.


class SqliteBatchWriter:
    """Runs ledger writes of one process in shared transactions on a SQLite file (see the module doc)."""

    def __init__(self, url: URL, *, busy_timeout_ms: int) -> None:
        assert url.get_backend_name() == "sqlite"
        assert url.database, "a second connection must see the same file"
        assert url.database != ":memory:", "a second connection must see the same file"
        self._engine = sa.create_engine(
            url.set(drivername="sqlite"),
            poolclass=StaticPool,
            # Used by the loop and by the one worker thread, never by both at once (the writer awaits).
            connect_args={"check_same_thread": False},
        )
        self._busy_timeout_ms = busy_timeout_ms
        sa.event.listen(self._engine, "connect", _on_connect)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite-writer")
        self._connection: sa.Connection | None = None
        self._queue: list[_Op] = []
        self._drainer: asyncio.Task[None] | None = None
        self._batches_since_checkpoint = 0
        self._closed = False

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work(conn)` inside a savepoint of the next batch's transaction; its result once committed."""
        assert not self._closed, "the ledger's engine was disposed"
        loop = asyncio.get_running_loop()
        op = _Op(work=work, future=loop.create_future())
        self._queue.append(op)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return cast(T, await op.future)

    def close(self) -> None:
        """Closes the connection and the thread (the ledger engine's dispose calls this)."""
        if self._closed:
            return
        self._closed = True
        if self._connection is not None:
            connection, self._connection = self._connection, None
            self._thread.submit(connection.close).result()
        self._thread.shutdown(wait=True)
        self._engine.dispose()

    async def _drain(self) -> None:
        while self._queue:
            batch = [op for op in self._queue[:BATCH_OPS_MAX] if not op.future.done()]
            del self._queue[:BATCH_OPS_MAX]
            if batch:
                await self._run_batch(batch)

    async def _hop(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def _begin(self) -> sa.Connection:
        """BEGIN IMMEDIATE: at once on the loop when the lock is free, else waiting on the thread."""
        if self._connection is None:
            self._connection = self._engine.connect()
        driver = _driver(self._connection)
        try:
            driver.execute("BEGIN IMMEDIATE")  # busy_timeout is 0 on this connection: never waits.
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            await self._hop(lambda: _begin_waiting(driver, busy_timeout_ms=self._busy_timeout_ms))
        return self._connection

    async def _run_batch(self, batch: list[_Op]) -> None:
        try:
            connection = await self._begin()
        except BaseException as error:
            _answer_all(batch, error)
            if not isinstance(error, Exception):
                raise
            return
        facade = cast(AsyncConnection, SyncOnLoopConnection(connection))
        # A write alone in its batch needs no savepoint: if it fails, the whole transaction rolls back.
        alone = len(batch) == 1
        try:
            for op in batch:
                await _run_op(connection, facade, op, savepoint=not alone)
            _end(connection, commit=not (alone and batch[0].outcome is not None and not batch[0].outcome[0]))
        except BaseException as error:
            # Nothing of this batch committed: every caller learns it, those whose write went well too.
            with contextlib.suppress(Exception):
                _end(connection, commit=False)
            _answer_all(batch, error)
            if not isinstance(error, Exception):
                raise
            return
        for op in batch:
            assert op.outcome is not None
            if op.future.done():
                continue
            succeeded, value = op.outcome
            if succeeded:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)
        self._batches_since_checkpoint += 1
        if self._batches_since_checkpoint >= CHECKPOINT_EVERY_BATCHES:
            self._batches_since_checkpoint = 0
            await self._checkpoint(connection)

    async def _checkpoint(self, connection: sa.Connection) -> None:
        """Copy the log into the database file (fsync) on the thread; PASSIVE: never waits for readers."""
        driver = _driver(connection)
        try:
            await self._hop(lambda: driver.execute("PRAGMA wal_checkpoint(PASSIVE)").close())
        except sqlite3.Error as error:  # A later checkpoint (or another connection's) catches up.
            log.warning("ledger_sqlite_checkpoint_failed", error=str(error))


async def _run_op(connection: sa.Connection, facade: AsyncConnection, op: _Op, *, savepoint: bool) -> None:
    # The op's savepoint is plain SQL: SQLAlchemy's nested-transaction bookkeeping around it cost more than
    # the op's own statements. SQLAlchemy's view of the transaction is untouched (an op's own nested
    # transactions still nest inside this one and end before it does).
    driver = connection if savepoint else None
    if driver is not None:
        driver.exec_driver_sql("SAVEPOINT ledger_op")
    try:
        result = await op.work(facade)
    except Exception as error:  # The op's own refusal: only its savepoint (or lone transaction) rolls back.
        if driver is not None:
            driver.exec_driver_sql("ROLLBACK TO ledger_op")
            driver.exec_driver_sql("RELEASE ledger_op")
        op.outcome = (False, error)
        return
    if driver is not None:
        driver.exec_driver_sql("RELEASE ledger_op")
    op.outcome = (True, result)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The writer issues BEGIN IMMEDIATE itself (`_begin`), so the driver must not begin transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")  # Durable on kill -9 (ledger/engine.py).
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # The writer checkpoints on its thread (module doc).
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _driver(connection: sa.Connection) -> sqlite3.Connection:
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _begin_waiting(driver: sqlite3.Connection, *, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE waiting up to busy_timeout for another process's write lock (on the thread)."""
    driver.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    try:
        driver.execute("BEGIN IMMEDIATE")
    finally:
        driver.execute("PRAGMA busy_timeout=0")


def _end(connection: sa.Connection, *, commit: bool) -> None:
    """COMMIT (or ROLLBACK) the batch: SQLAlchemy's view of the transaction and the driver's together."""
    if commit:
        connection.commit()
    else:
        connection.rollback()
    driver = _driver(connection)
    if driver.in_transaction:  # SQLAlchemy had not begun (no statement ran): end it at the driver.
        if commit:
            driver.commit()
        else:
            driver.rollback()


def _answer_all(batch: list[_Op], error: BaseException) -> None:
    for op in batch:
        if not op.future.done():
            op.future.set_exception(
                error if isinstance(error, Exception) else RuntimeError(f"ledger writer stopped: {error!r}")
            )
