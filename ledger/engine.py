"""Engine helpers: `create_ledger_engine(url)` and `migrate(engine)`.

On SQLite every transaction starts with BEGIN IMMEDIATE, so writers queue on the database lock at BEGIN
(bounded by busy_timeout) instead of failing with SQLITE_BUSY when a read lock is upgraded; WAL lets readers
go on meanwhile. On PostgreSQL the ledger locks accounts itself (SELECT ... FOR UPDATE in id order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "PG_LOCK_TIMEOUT_MS",
    "PG_STATEMENT_TIMEOUT_MS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_SYNCHRONOUS",
    "create_ledger_engine",
    "install_sqlite_hooks",
    "migrate",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
# WAL with synchronous=NORMAL: a COMMIT writes the WAL without waiting for fsync, which happens at
# checkpoints. A committed transaction survives the process being killed (kill -9, OOM, a crash) — SQLite
# guarantees that whatever the synchronous setting — and only an OS crash or power loss can take back the
# last ones. FULL would fsync on every commit (about 6 ms on this machine's disk) to survive those too;
# an operator who needs that runs PostgreSQL.
SQLITE_SYNCHRONOUS = "NORMAL"
PG_LOCK_TIMEOUT_MS = 10_000
PG_STATEMENT_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def install_sqlite_hooks(engine: AsyncEngine, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """Make an aiosqlite engine safe for concurrent ledger writes: WAL, busy_timeout, BEGIN IMMEDIATE."""
    assert engine.dialect.name == "sqlite"
    assert busy_timeout_ms > 0

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so the "begin" hook below decides how to BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file a read-only command would otherwise create empty, when it does not exist."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def create_ledger_engine(url: str, **engine_kwargs: Any) -> AsyncEngine:
    """An async engine configured for the ledger (SQLite hooks when the URL is SQLite)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **engine_kwargs)
        install_sqlite_hooks(engine)
        return engine
    # No pool_pre_ping: it costs a round trip on every checkout (~10% of a ledger write's CPU). A dropped
    # connection invalidates the pool at its first error; ledger writes then run once more on a fresh one
    # (Ledger._write_in_one_greenlet), other statements fail once.
    if url.startswith("postgresql+asyncpg"):
        # Bounded waits: a lock held too long or a runaway statement fails instead of hanging a request.
        connect_args = dict(engine_kwargs.pop("connect_args", {}))
        server_settings = {
            "lock_timeout": str(PG_LOCK_TIMEOUT_MS),
            "statement_timeout": str(PG_STATEMENT_TIMEOUT_MS),
            **connect_args.get("server_settings", {}),
        }
        engine_kwargs["connect_args"] = connect_args | {"server_settings": server_settings}
    return create_async_engine(url, **engine_kwargs)


def _upgrade(connection: Connection) -> None:
    # Alembic takes a quarter of a second to import; only a migration needs it (`ledger check` on a
    # current schema does not, see ledger/schema_version.py).
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the ledger schema to the newest revision. Safe to call at every start."""
    if engine.dialect.name == "sqlite":
        db_path = engine.url.database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Two processes starting at once must not both create the schema.
            await connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7262034501)")
        await connection.run_sync(_upgrade)
