"""Pure reconciliation matching: one case per break kind, and a clean match producing no breaks."""

from __future__ import annotations

from ledger.reconcile import (
    BreakKind,
    Direction,
    ExternalMovement,
    InTransitState,
    LedgerMovement,
    ObservedBalance,
    match_movements,
)
from ledger.types import Hold, HoldState

CASH = "cash:eip155:31337:0xaa:0xbb"
NOW_UNIX_MS = 1_800_000_000_000


def ext(ref: str, amount: int, direction: Direction = Direction.IN) -> ExternalMovement:
    return ExternalMovement(external_ref=ref, direction=direction, account=CASH, amount_nano_usd=amount)


def booked(ref: str | None, amount: int, transaction_id: int = 1) -> LedgerMovement:
    return LedgerMovement(
        transaction_id=transaction_id, external_ref=ref, account=CASH, amount_nano_usd=amount
    )


def kinds(**kwargs: object) -> list[BreakKind]:
    result = match_movements(now_unix_ms=NOW_UNIX_MS, **kwargs)  # type: ignore[arg-type]
    return [b.kind for b in result.breaks]


def test_clean_match() -> None:
    result = match_movements(
        external=[ext("a", 5), ext("b", 3, Direction.OUT)],
        booked=[booked("a", 5, 1), booked("b", -3, 2), booked(None, 9, 3)],
        observed_balances=[ObservedBalance(account=CASH, balance_nano_usd=11)],
        ledger_balances={CASH: 11},
        now_unix_ms=NOW_UNIX_MS,
    )
    assert result.breaks == ()
    assert result.matched == (("a", 1), ("b", 2))


def test_each_break_kind() -> None:
    assert kinds(external=[ext("a", 5)], booked=[]) == [BreakKind.MISSING_IN_LEDGER]
    assert kinds(external=[], booked=[booked("a", 5)]) == [BreakKind.MISSING_ON_CHAIN]
    assert kinds(external=[ext("a", 5)], booked=[booked("a", 6)]) == [BreakKind.AMOUNT_MISMATCH]
    assert kinds(external=[ext("a", 5), ext("a", 5)], booked=[booked("a", 5)]) == [BreakKind.DUPLICATE]
    assert kinds(
        external=[],
        booked=[],
        observed_balances=[ObservedBalance(account=CASH, balance_nano_usd=1)],
        ledger_balances={CASH: 0},
    ) == [BreakKind.BALANCE_MISMATCH]
    stale = InTransitState(account="in_transit:x:0x1", balance_nano_usd=5, last_movement_unix_ms=0)
    assert kinds(external=[], booked=[], in_transit=[stale]) == [BreakKind.STALE_IN_TRANSIT]
    hold = Hold(
        id=1,
        idempotency_key="h",
        code="hold",
        debit_account="credit:account:1",
        credit_account="p",
        unit="nano_usd",
        amount=5,
        metadata={},
        created_at_unix_ms=0,
        expires_at_unix_ms=1_000,
        state=HoldState.PENDING,
        captured_amount=None,
        resolved_at_unix_ms=None,
        resolution_transaction_id=None,
    )
    assert kinds(external=[], booked=[], pending_holds=[hold]) == [BreakKind.EXPIRED_HOLD_NOT_RELEASED]
