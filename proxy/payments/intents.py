"""Settlement intents: the durable record that makes x402 settlement crash-safe.

claimed → signed → mined → booked is the happy path. An `upto` intent waits between claimed and signed
while its request is served: claimed (the signed maximum reserved) → due (the cost captured, `value_atomic`
now the amount to settle, written in the capture's own database transaction) → signed → mined → booked;
or released (nothing to settle: zero cost, or the inference failed), or lost (served, but the settlement
failed: the payer withdrew allowance or balance, or invalidated the nonce). Neither of the two last is
reclaimable: one authorization pays for one request. A claim that never got signed is abandoned on
recovery (nothing was sent); a settlement refused or reverted is failed (the authorization may be claimed
again while still unused on chain). Every transition is a conditional UPDATE, so two workers can never
move one intent along twice.

A claim also reserves the payer's balance: the claims of one payer (network, asset, payer) are serialized
by a database lock, and one is refused with insufficient_funds when the payer's on-chain balance does not
cover it on top of the payer's intents still in flight. So concurrent authorizations that the balance
covers only one at a time cannot all be sent, and none of them reverts on chain for want of funds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy.db.tables import x402_settlements
from x402.errors import InsufficientFunds
from x402.verify import PayerBalance

__all__ = ["UNFINISHED_STATUSES", "SettlementIntent", "SettlementIntents", "SettlementStatus"]


class SettlementStatus(StrEnum):
    CLAIMED = "claimed"
    SIGNED = "signed"
    MINED = "mined"
    BOOKED = "booked"
    FAILED = "failed"
    ABANDONED = "abandoned"
    DUE = "due"
    RELEASED = "released"
    LOST = "lost"


UNFINISHED_STATUSES = (
    SettlementStatus.CLAIMED,
    SettlementStatus.DUE,
    SettlementStatus.SIGNED,
    SettlementStatus.MINED,
)
# A claim may be taken over only where nothing can still reach the chain.
_RECLAIMABLE_STATUSES = (SettlementStatus.FAILED, SettlementStatus.ABANDONED)
_RECLAIMABLE_VALUES = frozenset(status.value for status in _RECLAIMABLE_STATUSES)
# Intents whose transfer the chain may not show yet: a balance read before their block still holds the tokens.
_SENDING_STATUSES = (SettlementStatus.CLAIMED, SettlementStatus.DUE, SettlementStatus.SIGNED)
_LANDED_STATUSES = (SettlementStatus.MINED, SettlementStatus.BOOKED)


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
    updated_at: datetime
    scheme: str = "exact"
    max_atomic: int | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _payer_lock_key(*, network: str, asset: str, payer: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, one per (network, asset, payer)."""
    digest = hashlib.blake2b(f"x402-payer:{network}:{asset}:{payer}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _lock_payer(connection: AsyncConnection, *, network: str, asset: str, payer: str) -> None:
    """Serializes claims of one payer until the transaction ends, across every process on the database."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        lock_key = _payer_lock_key(network=network, asset=asset, payer=payer)
        await connection.execute(text("SELECT pg_advisory_xact_lock(:lock_key)"), {"lock_key": lock_key})
        return
    # SQLite: the engine begins every transaction with BEGIN IMMEDIATE (ledger.engine), which already holds
    # the database's write lock, so claims of every payer are serialized.
    assert dialect == "sqlite", f"no payer lock for {dialect}"


async def _in_flight_atomic(
    connection: AsyncConnection, key: dict[str, str], *, balance_block_number: int
) -> int:
    """What the payer's other intents will still take from the balance read at `balance_block_number`."""
    table = x402_settlements
    not_yet_in_balance = or_(
        table.c.status.in_([status.value for status in _SENDING_STATUSES]),
        and_(
            table.c.status.in_([status.value for status in _LANDED_STATUSES]),
            table.c.block_number > balance_block_number,
        ),
    )
    statement = select(func.coalesce(func.sum(table.c.value_atomic), 0)).where(
        table.c.network == key["network"],
        table.c.asset == key["asset"],
        table.c.payer == key["payer"],
        table.c.authorization_nonce != key["authorization_nonce"],
        not_yet_in_balance,
    )
    in_flight_atomic = int((await connection.execute(statement)).scalar_one())
    assert in_flight_atomic >= 0
    return in_flight_atomic


class SettlementIntents:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

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
        payer_balance: PayerBalance,
        scheme: str = "exact",
    ) -> SettlementIntent | None:
        """Claims an authorization for settlement; None when another request holds or finished it.

        Raises InsufficientFunds when the payer's balance (read from chain at `payer_balance.block_number`)
        does not cover this authorization on top of the payer's settlements still in flight: two concurrent
        authorizations that the balance covers only one at a time would both verify, and the second would
        revert on chain and burn our gas. The check and the claim happen under one lock per payer, held by
        the database (so every process sharing it is serialized), never across an RPC call.
        """
        assert value_atomic > 0
        assert payer_balance.balance_atomic >= 0
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
            "block_number": None,
            "error_reason": None,
            "updated_at": now,
            "scheme": scheme,
            "max_atomic": value_atomic if scheme == "upto" else None,
        }
        table = x402_settlements
        async with self._engine.begin() as connection:
            await _lock_payer(connection, network=network, asset=key["asset"], payer=key["payer"])
            existing = (
                await connection.execute(
                    select(table.c.status).where(*(table.c[column] == value for column, value in key.items()))
                )
            ).scalar_one_or_none()
            if existing is not None and existing not in _RECLAIMABLE_VALUES:
                return None  # Another request holds this very authorization, or already settled it.
            in_flight_atomic = await _in_flight_atomic(
                connection, key, balance_block_number=payer_balance.block_number
            )
            if in_flight_atomic + value_atomic > payer_balance.balance_atomic:
                raise InsufficientFunds(
                    f"payer balance {payer_balance.balance_atomic} does not cover {value_atomic} on top of "
                    f"{in_flight_atomic} already being settled"
                )
            if existing is None:
                await connection.execute(insert(table).values(**key, **fresh, created_at=now))
            else:
                await connection.execute(
                    update(table)
                    .where(*(table.c[column] == value for column, value in key.items()))
                    .values(**fresh)
                )
        intent = await self._get_by_key(key)
        assert intent is not None
        return intent

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
        self,
        intent_id: int,
        *,
        from_statuses: tuple[SettlementStatus, ...],
        to: SettlementStatus,
        **values: object,
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

    async def record_due(self, connection: AsyncConnection, intent_id: int, *, amount_atomic: int) -> None:
        """An `upto` request's cost is captured: settle `amount_atomic` (0: nothing, the intent is released).

        Runs inside the capture's own database transaction (`connection`), so a crash can never leave a
        captured request without its amount due, nor an amount due without its capture.
        """
        assert amount_atomic >= 0
        table = x402_settlements
        status = SettlementStatus.DUE if amount_atomic > 0 else SettlementStatus.RELEASED
        statement = (
            update(table)
            .where(table.c.id == intent_id)
            .where(table.c.status == SettlementStatus.CLAIMED.value)
            .where(table.c.scheme == "upto")
            .where(table.c.max_atomic >= amount_atomic)
            .values(status=status.value, value_atomic=amount_atomic, updated_at=self._clock())
        )
        result = await connection.execute(statement)
        assert result.rowcount == 1, (
            f"upto intent {intent_id} was not claimed with a maximum ≥ {amount_atomic}"
        )

    async def record_released(self, intent_id: int, *, reason: str) -> None:
        """An `upto` intent with nothing to settle (the inference failed): nothing moves, ever."""
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED,),
            to=SettlementStatus.RELEASED,
            error_reason=reason,
        )

    async def record_lost(
        self,
        intent_id: int,
        *,
        reason: str,
        reverted_tx_hash: str | None = None,
        block_number: int | None = None,
    ) -> None:
        """A served `upto` request whose settlement can never land: booked as the operator's loss."""
        reverted = (
            {} if reverted_tx_hash is None else {"tx_hash": reverted_tx_hash, "block_number": block_number}
        )
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.DUE, SettlementStatus.SIGNED),
            to=SettlementStatus.LOST,
            error_reason=reason,
            **reverted,
        )

    async def record_signed(
        self, intent_id: int, *, tx_hash: str, raw_tx: str, tx_nonce: int, from_block: int
    ) -> None:
        # SIGNED → SIGNED: recovery may replace a transaction that can never be mined with a fresh one.
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED, SettlementStatus.DUE, SettlementStatus.SIGNED),
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
            from_statuses=(SettlementStatus.CLAIMED, SettlementStatus.DUE, SettlementStatus.SIGNED),
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

    async def record_failed(
        self,
        intent_id: int,
        *,
        reason: str,
        reverted_tx_hash: str | None = None,
        block_number: int | None = None,
    ) -> None:
        """Nothing of this intent can land any more; a reverted transaction keeps its hash and block, so
        reconciliation looks its receipt (and the gas it burned) up."""
        assert (reverted_tx_hash is None) == (block_number is None)
        reverted = (
            {} if reverted_tx_hash is None else {"tx_hash": reverted_tx_hash, "block_number": block_number}
        )
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED, SettlementStatus.SIGNED),
            to=SettlementStatus.FAILED,
            error_reason=reason,
            **reverted,
        )

    async def record_abandoned(self, intent_id: int, *, reason: str) -> None:
        await self._transition(
            intent_id,
            from_statuses=(SettlementStatus.CLAIMED,),
            to=SettlementStatus.ABANDONED,
            error_reason=reason,
        )

    async def unfinished(self, *, older_than_s: float = 0.0) -> list[SettlementIntent]:
        """Open intents untouched for `older_than_s`, so that live requests are left alone."""
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
