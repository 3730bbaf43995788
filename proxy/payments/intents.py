"""Settlement intents: the durable record that makes x402 settlement crash-safe.

claimed → signed → mined → booked is the happy path. A claim that never got signed is abandoned on
recovery (nothing was sent); a settlement refused or reverted is failed (the authorization may be claimed
again while still unused on chain). Every transition is a conditional UPDATE, so two workers can never
move one intent along twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.db.tables import x402_settlements

__all__ = ["UNFINISHED_STATUSES", "SettlementIntent", "SettlementIntents", "SettlementStatus"]


class SettlementStatus(StrEnum):
    CLAIMED = "claimed"
    SIGNED = "signed"
    MINED = "mined"
    BOOKED = "booked"
    FAILED = "failed"
    ABANDONED = "abandoned"


UNFINISHED_STATUSES = (SettlementStatus.CLAIMED, SettlementStatus.SIGNED, SettlementStatus.MINED)
# A claim may be taken over only where nothing can still reach the chain.
_RECLAIMABLE_STATUSES = (SettlementStatus.FAILED, SettlementStatus.ABANDONED)


class SettlementIntent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    network: str
    asset: str
    payer: str
    authorization_nonce: str
    value_atomic: int
    valid_before_unix_s: int
    verified_payment_json: str
    status: SettlementStatus
    tx_hash: str | None
    raw_tx: str | None
    tx_nonce: int | None
    from_block: int | None
    block_number: int | None
    transfer_log_index: int | None
    ledger_transaction_id: int | None
    error_reason: str | None
    request_id: str | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SettlementIntents:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    async def claim(
        self,
        *,
        network: str,
        asset: str,
        payer: str,
        authorization_nonce: str,
        value_atomic: int,
        valid_before_unix_s: int,
        verified_payment_json: str,
        request_id: str | None,
    ) -> SettlementIntent | None:
        """Claims an authorization for settlement; None when another request holds or finished it."""
        assert value_atomic > 0
        key = {
            "network": network,
            "asset": asset.lower(),
            "payer": payer.lower(),
            "authorization_nonce": authorization_nonce.lower(),
        }
        now = self._clock()
        fresh = {
            "value_atomic": value_atomic,
            "valid_before_unix_s": valid_before_unix_s,
            "verified_payment_json": verified_payment_json,
            "status": SettlementStatus.CLAIMED.value,
            "request_id": request_id,
            "tx_hash": None,
            "raw_tx": None,
            "tx_nonce": None,
            "from_block": None,
            "error_reason": None,
            "updated_at": now,
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(x402_settlements).values(**key, **fresh, created_at=now))
        except IntegrityError:
            taken_over = await self._reclaim(key, fresh)
            if not taken_over:
                return None
        intent = await self._get_by_key(key)
        assert intent is not None
        return intent

    async def _reclaim(self, key: dict[str, str], fresh: dict[str, object]) -> bool:
        table = x402_settlements
        statement = (
            update(table)
            .where(*(table.c[column] == value for column, value in key.items()))
            .where(table.c.status.in_([status.value for status in _RECLAIMABLE_STATUSES]))
            .values(**fresh)
        )
        async with self._engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount == 1

    async def _get_by_key(self, key: dict[str, str]) -> SettlementIntent | None:
        table = x402_settlements
        statement = select(table).where(*(table.c[column] == value for column, value in key.items()))
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        return SettlementIntent.model_validate(dict(row)) if row else None

    async def get(self, intent_id: int) -> SettlementIntent | None:
        statement = select(x402_settlements).where(x402_settlements.c.id == intent_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        return SettlementIntent.model_validate(dict(row)) if row else None

    async def _transition(
        self, intent_id: int, *, from_statuses: tuple[SettlementStatus, ...], to: SettlementStatus, **values: object
    ) -> None:
        table = x402_settlements
        statement = (
            update(table)
            .where(table.c.id == intent_id)
            .where(table.c.status.in_([status.value for status in from_statuses]))
            .values(status=to.value, updated_at=self._clock(), **values)
        )
        async with self._engine.begin() as connection:
            result = await connection.execute(statement)
        # A lost transition means two workers drove one intent: a bug, never an expected outcome.
        assert result.rowcount == 1, f"intent {intent_id} was not in {from_statuses} for → {to}"

    async def record_signed(
        self, intent_id: int, *, tx_hash: str, raw_tx: str, tx_nonce: int, from_block: int
    ) -> None:
        # SIGNED → SIGNED: recovery may replace a transaction that can never be mined with a fresh one.
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED, SettlementStatus.SIGNED),
            to=SettlementStatus.SIGNED,
            tx_hash=tx_hash,
            raw_tx=raw_tx,
            tx_nonce=tx_nonce,
            from_block=from_block,
        )

    async def record_mined(
        self, intent_id: int, *, tx_hash: str, block_number: int, transfer_log_index: int
    ) -> SettlementIntent:
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED, SettlementStatus.SIGNED),
            to=SettlementStatus.MINED,
            tx_hash=tx_hash,
            block_number=block_number,
            transfer_log_index=transfer_log_index,
        )
        intent = await self.get(intent_id)
        assert intent is not None
        return intent

    async def record_booked(self, intent_id: int, *, ledger_transaction_id: int) -> None:
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.MINED,),
            to=SettlementStatus.BOOKED,
            ledger_transaction_id=ledger_transaction_id,
        )

    async def record_failed(self, intent_id: int, *, reason: str) -> None:
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED, SettlementStatus.SIGNED),
            to=SettlementStatus.FAILED,
            error_reason=reason,
        )

    async def record_abandoned(self, intent_id: int, *, reason: str) -> None:
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED,),
            to=SettlementStatus.ABANDONED,
            error_reason=reason,
        )

    async def unfinished(self, *, older_than_s: float = 0.0) -> list[SettlementIntent]:
        """Intents not yet booked or closed, untouched for `older_than_s` (so live requests are left alone)."""
        assert older_than_s >= 0
        table = x402_settlements
        cutoff = self._clock() - timedelta(seconds=older_than_s)
        statement = (
            select(table)
            .where(table.c.status.in_([status.value for status in UNFINISHED_STATUSES]))
            .where(table.c.updated_at <= cutoff)
            .order_by(table.c.id)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [SettlementIntent.model_validate(dict(row)) for row in rows]
