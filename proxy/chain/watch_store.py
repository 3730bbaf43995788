"""The chain watcher's durable cursor per (network, token), in the proxy's `chain_watch_cursors` table.

A cursor says "every block below `next_block` is scanned and booked"; it is written only after the
deposits of a batch are booked, so a crash between the two re-scans that batch and the idempotent
bookings make the re-scan harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.db.tables import chain_watch_cursors

__all__ = ["ChainWatchCursor", "ChainWatchStore"]


class ChainWatchCursor(BaseModel):
    model_config = ConfigDict(frozen=True)

    network: str
    asset: str
    next_block: int = Field(ge=0)
    last_block_hash: str | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ChainWatchStore:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    async def get(self, *, network: str, asset: str) -> ChainWatchCursor | None:
        table = chain_watch_cursors
        statement = select(table).where(table.c.network == network, table.c.asset == asset.lower())
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            return None
        return ChainWatchCursor(
            network=row["network"],
            asset=row["asset"],
            next_block=row["next_block"],
            last_block_hash=row["last_block_hash"],
        )

    async def put(self, cursor: ChainWatchCursor) -> None:
        """Stores the cursor, moving it backwards too: after a reorganisation the chain may be shorter."""
        assert cursor.asset == cursor.asset.lower()
        table = chain_watch_cursors
        values = {
            "next_block": cursor.next_block,
            "last_block_hash": cursor.last_block_hash,
            "updated_at": self._clock(),
        }
        key = (table.c.network == cursor.network, table.c.asset == cursor.asset)
        for attempt in range(2):
            try:
                async with self._engine.begin() as connection:
                    result = await connection.execute(update(table).where(*key).values(**values))
                    if result.rowcount == 0:
                        await connection.execute(
                            insert(table).values(network=cursor.network, asset=cursor.asset, **values)
                        )
                return
            except IntegrityError:
                # Another watcher inserted the row first; the second round updates it.
                if attempt == 1:
                    raise
