"""Reconciliation core: match external (on-chain) movements to ledger transactions and back, and store runs.

No chain access here: the proxy reads the chain and hands in `ExternalMovement`s and `ObservedBalance`s.
`match_movements` is pure; `gather_ledger_side` reads what the ledger booked; `reconcile_and_record` does both
and stores the run with its breaks so an operator can read them later (`list_runs`, `run_breaks`).

Break kinds: missing_in_ledger (on chain, not booked), missing_on_chain (booked with an external_ref the chain
does not show), amount_mismatch (both sides, different amounts), duplicate (one external_ref seen twice on a
side), balance_mismatch (a cash account's booked balance differs from the observed one), stale_in_transit
(an in_transit account has not drained within its bound), expired_hold_not_released (a hold past its timeout
still pending: the sweeper is not running).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.store import Ledger
from ledger.tables import ledger_metadata
from ledger.types import INT64_MAX, Hold, HoldState

__all__ = [
    "Break",
    "BreakKind",
    "Direction",
    "ExternalMovement",
    "InTransitState",
    "LedgerMovement",
    "MatchResult",
    "ObservedBalance",
    "ReconcileRun",
    "gather_ledger_side",
    "list_runs",
    "match_movements",
    "reconcile_and_record",
    "run_breaks",
]

ACCOUNTS = ledger_metadata.tables["ledger_accounts"]
TRANSACTIONS = ledger_metadata.tables["ledger_transactions"]
ENTRIES = ledger_metadata.tables["ledger_entries"]
RUNS = ledger_metadata.tables["ledger_reconcile_runs"]
BREAKS = ledger_metadata.tables["ledger_reconcile_breaks"]
RUNS_LIST_MAX = 1_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Direction(enum.StrEnum):
    IN = "in"  # into our cash account (debit)
    OUT = "out"  # out of it (credit)


class BreakKind(enum.StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_ON_CHAIN = "missing_on_chain"
    AMOUNT_MISMATCH = "amount_mismatch"
    DUPLICATE = "duplicate"
    BALANCE_MISMATCH = "balance_mismatch"
    STALE_IN_TRANSIT = "stale_in_transit"
    EXPIRED_HOLD_NOT_RELEASED = "expired_hold_not_released"


class ExternalMovement(_Frozen):
    """One movement seen on chain, in its account's unit: a token transfer converted to nano-USD by the
    caller, or the gas a transaction paid, in wei, out of a native cash account (`chart.unit_for`)."""

    external_ref: str = Field(min_length=1, max_length=255)
    direction: Direction
    account: str = Field(min_length=1, max_length=255)
    amount_nano_usd: int = Field(gt=0, le=INT64_MAX)

    @property
    def signed_nano_usd(self) -> int:
        return self.amount_nano_usd if self.direction is Direction.IN else -self.amount_nano_usd


class ObservedBalance(_Frozen):
    account: str
    balance_nano_usd: int


class LedgerMovement(_Frozen):
    """One booked entry on a reconciled account: signed (debit > 0), with its transaction's external_ref."""

    transaction_id: int
    external_ref: str | None
    account: str
    amount_nano_usd: int


class InTransitState(_Frozen):
    account: str
    balance_nano_usd: int
    last_movement_unix_ms: int


class Break(_Frozen):
    kind: BreakKind
    external_ref: str | None = None
    account: str | None = None
    ledger_amount_nano_usd: int | None = None
    external_amount_nano_usd: int | None = None
    detail: str


class MatchResult(_Frozen):
    matched: tuple[tuple[str, int], ...]  # (external_ref, transaction_id)
    breaks: tuple[Break, ...]


class ReconcileRun(_Frozen):
    id: int
    started_at_unix_ms: int
    movements_count: int
    matched_count: int
    breaks_count: int
    # What the caller recorded about the run's scope (e.g. network, wallet, block range), plus `accounts`.
    metadata: dict[str, Any] = Field(default_factory=dict)


def match_movements(
    *,
    external: Sequence[ExternalMovement],
    booked: Sequence[LedgerMovement],
    observed_balances: Sequence[ObservedBalance] = (),
    ledger_balances: Mapping[str, int] | None = None,
    in_transit: Sequence[InTransitState] = (),
    pending_holds: Sequence[Hold] = (),
    now_unix_ms: int,
    in_transit_max_age_s: int = 3_600,
    hold_grace_s: int = 60,
) -> MatchResult:
    """Match each external movement to exactly one booked movement (by external_ref, account) and back."""
    assert in_transit_max_age_s > 0
    assert hold_grace_s >= 0
    breaks: list[Break] = []
    matched: list[tuple[str, int]] = []
    by_ref_external: dict[tuple[str, str], list[ExternalMovement]] = defaultdict(list)
    for movement in external:
        by_ref_external[(movement.external_ref, movement.account)].append(movement)
    by_ref_booked: dict[tuple[str, str], list[LedgerMovement]] = defaultdict(list)
    for entry in booked:
        if entry.external_ref is not None:
            by_ref_booked[(entry.external_ref, entry.account)].append(entry)
    for (ref, account), seen in sorted(by_ref_external.items()):
        entries = by_ref_booked.get((ref, account), [])
        if len(seen) > 1 or len(entries) > 1:
            side = "on chain" if len(seen) > 1 else _booked_by(entries)
            breaks.append(
                Break(
                    kind=BreakKind.DUPLICATE, external_ref=ref, account=account, detail=f"seen twice {side}"
                )
            )
            continue
        movement = seen[0]
        if not entries:
            breaks.append(
                Break(
                    kind=BreakKind.MISSING_IN_LEDGER,
                    external_ref=ref,
                    account=account,
                    external_amount_nano_usd=movement.signed_nano_usd,
                    detail="on chain but not booked",
                )
            )
        elif entries[0].amount_nano_usd != movement.signed_nano_usd:
            breaks.append(
                Break(
                    kind=BreakKind.AMOUNT_MISMATCH,
                    external_ref=ref,
                    account=account,
                    ledger_amount_nano_usd=entries[0].amount_nano_usd,
                    external_amount_nano_usd=movement.signed_nano_usd,
                    detail="booked amount differs from chain",
                )
            )
        else:
            matched.append((ref, entries[0].transaction_id))
    for (ref, account), entries in sorted(by_ref_booked.items()):
        if (ref, account) not in by_ref_external:
            breaks.append(
                Break(
                    kind=BreakKind.MISSING_ON_CHAIN if len(entries) == 1 else BreakKind.DUPLICATE,
                    external_ref=ref,
                    account=account,
                    ledger_amount_nano_usd=entries[0].amount_nano_usd,
                    detail="booked but not seen on chain",
                )
            )
    breaks += _balance_breaks(observed_balances, ledger_balances or {})
    breaks += _age_breaks(in_transit, pending_holds, now_unix_ms, in_transit_max_age_s, hold_grace_s)
    return MatchResult(matched=tuple(matched), breaks=tuple(breaks))


def _booked_by(entries: Sequence[LedgerMovement]) -> str:
    # Naming the transactions lets the operator find and correct the extra booking.
    return "in the ledger (transactions " + ", ".join(str(e.transaction_id) for e in entries) + ")"


def _balance_breaks(observed: Sequence[ObservedBalance], booked: Mapping[str, int]) -> list[Break]:
    breaks = []
    for balance in observed:
        ledger_balance = booked.get(balance.account, 0)
        if ledger_balance != balance.balance_nano_usd:
            breaks.append(
                Break(
                    kind=BreakKind.BALANCE_MISMATCH,
                    account=balance.account,
                    ledger_amount_nano_usd=ledger_balance,
                    external_amount_nano_usd=balance.balance_nano_usd,
                    detail="booked cash balance differs from the observed balance",
                )
            )
    return breaks


def _age_breaks(
    in_transit: Sequence[InTransitState],
    holds: Sequence[Hold],
    now_unix_ms: int,
    in_transit_max_age_s: int,
    hold_grace_s: int,
) -> list[Break]:
    breaks = []
    for state in in_transit:
        if (
            state.balance_nano_usd != 0
            and now_unix_ms - state.last_movement_unix_ms > in_transit_max_age_s * 1000
        ):
            breaks.append(
                Break(
                    kind=BreakKind.STALE_IN_TRANSIT,
                    account=state.account,
                    ledger_amount_nano_usd=state.balance_nano_usd,
                    detail=f"not drained {in_transit_max_age_s} s after its last movement",
                )
            )
    for hold in holds:
        if hold.state is HoldState.PENDING and hold.expires_at_unix_ms + hold_grace_s * 1000 < now_unix_ms:
            breaks.append(
                Break(
                    kind=BreakKind.EXPIRED_HOLD_NOT_RELEASED,
                    account=hold.debit_account,
                    ledger_amount_nano_usd=hold.amount,
                    detail=f"hold {hold.id} is past its timeout and still pending",
                )
            )
    return breaks


async def gather_ledger_side(engine: AsyncEngine, accounts: Sequence[str]) -> list[LedgerMovement]:
    """Every booked entry on the given accounts, with its transaction's external_ref."""
    query = (
        sa.select(TRANSACTIONS.c.id, TRANSACTIONS.c.external_ref, ACCOUNTS.c.name, ENTRIES.c.amount)
        .select_from(
            ENTRIES.join(TRANSACTIONS, TRANSACTIONS.c.id == ENTRIES.c.transaction_id).join(
                ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id
            )
        )
        .where(ACCOUNTS.c.name.in_(list(accounts)))
        .order_by(ENTRIES.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        LedgerMovement(transaction_id=r[0], external_ref=r[1], account=r[2], amount_nano_usd=r[3])
        for r in rows
    ]


async def reconcile_and_record(
    ledger: Ledger,
    *,
    external: Sequence[ExternalMovement],
    observed_balances: Sequence[ObservedBalance],
    in_transit_accounts: Sequence[str] = (),
    now_unix_ms: int,
    in_transit_max_age_s: int = 3_600,
    hold_grace_s: int = 60,
    booked: Sequence[LedgerMovement] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[ReconcileRun, MatchResult]:
    """Gather the ledger side for the observed cash accounts, match, and store the run with its breaks.

    `booked`, when given, replaces the gathered ledger side: a caller reconciling only part of the history
    (a block range) passes the entries that belong to it. `metadata` is stored with the run.
    """
    accounts = sorted({b.account for b in observed_balances} | {m.account for m in external})
    # Pending holds are read before anything below sweeps them (balances() and statement() expire due
    # holds): a hold still pending past its timeout is the evidence that no sweeper is running.
    pending = await ledger.holds(state=HoldState.PENDING)
    if booked is None:
        booked = await gather_ledger_side(ledger.engine, accounts)
    balances = {b.account: b.posted for b in await ledger.balances() if b.account in set(accounts)}
    transit = []
    for name in in_transit_accounts:
        statement = await ledger.statement(name, limit=1)
        last = statement.lines[-1].created_at_unix_ms if statement.lines else now_unix_ms
        transit.append(
            InTransitState(
                account=name, balance_nano_usd=statement.balance.posted, last_movement_unix_ms=last
            )
        )
    result = match_movements(
        external=external,
        booked=booked,
        observed_balances=observed_balances,
        ledger_balances=balances,
        in_transit=transit,
        pending_holds=pending,
        now_unix_ms=now_unix_ms,
        in_transit_max_age_s=in_transit_max_age_s,
        hold_grace_s=hold_grace_s,
    )
    run_metadata = dict(metadata or {}) | {"accounts": accounts}
    async with ledger.engine.begin() as conn:
        inserted = await conn.execute(
            RUNS.insert().values(
                started_at_unix_ms=now_unix_ms,
                movements_count=len(external),
                matched_count=len(result.matched),
                breaks_count=len(result.breaks),
                metadata_json=run_metadata,
            )
        )
        key = inserted.inserted_primary_key
        assert key is not None
        run_id = int(key[0])
        if result.breaks:
            await conn.execute(
                BREAKS.insert(), [b.model_dump(mode="json") | {"run_id": run_id} for b in result.breaks]
            )
    run = ReconcileRun(
        id=run_id,
        started_at_unix_ms=now_unix_ms,
        movements_count=len(external),
        matched_count=len(result.matched),
        breaks_count=len(result.breaks),
        metadata=run_metadata,
    )
    return run, result


async def list_runs(engine: AsyncEngine, *, limit: int = 50) -> list[ReconcileRun]:
    """Stored runs, newest first."""
    assert 0 < limit <= RUNS_LIST_MAX
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(RUNS).order_by(RUNS.c.id.desc()).limit(limit))).mappings().all()
    return [
        ReconcileRun(
            id=r["id"],
            started_at_unix_ms=r["started_at_unix_ms"],
            movements_count=r["movements_count"],
            matched_count=r["matched_count"],
            breaks_count=r["breaks_count"],
            metadata=r["metadata_json"] or {},
        )
        for r in rows
    ]


async def run_breaks(engine: AsyncEngine, run_id: int) -> list[Break]:
    async with engine.connect() as conn:
        rows = (
            (await conn.execute(sa.select(BREAKS).where(BREAKS.c.run_id == run_id).order_by(BREAKS.c.id)))
            .mappings()
            .all()
        )
    return [
        Break(
            kind=BreakKind(r["kind"]),
            external_ref=r["external_ref"],
            account=r["account"],
            ledger_amount_nano_usd=r["ledger_amount_nano_usd"],
            external_amount_nano_usd=r["external_amount_nano_usd"],
            detail=r["detail"],
        )
        for r in rows
    ]
