"""Reconciliation against a real ledger: runs and breaks are stored and read back, also through the CLI."""

from __future__ import annotations

import argparse
import io
import json

from ledger import AccountType, Ledger
from ledger.cli import add_ledger_commands, run_ledger_command
from ledger.reconcile import (
    BreakKind,
    Direction,
    ExternalMovement,
    ObservedBalance,
    list_runs,
    reconcile_and_record,
    run_breaks,
)
from tests.fixtures.ledger import FakeClock

CASH = (
    "cash:eip155:31337:0x00000000000000000000000000000000000000aa:0x00000000000000000000000000000000000000bb"
)


async def test_run_is_stored_with_its_breaks(
    ledger: Ledger, ledger_clock: FakeClock, database_url: str
) -> None:
    await ledger.ensure_account(CASH, type=AccountType.ASSET, unit="nano_usd")
    await ledger.ensure_account("credit:account:a", type=AccountType.LIABILITY, unit="nano_usd")
    await ledger.post(
        idempotency_key="k1",
        code="deposit",
        postings=[(CASH, 5_000), ("credit:account:a", -5_000)],
        external_ref="tx1",
    )
    run, result = await reconcile_and_record(
        ledger,
        external=[
            ExternalMovement(external_ref="tx1", direction=Direction.IN, account=CASH, amount_nano_usd=5_000),
            ExternalMovement(external_ref="tx2", direction=Direction.IN, account=CASH, amount_nano_usd=1_000),
        ],
        observed_balances=[ObservedBalance(account=CASH, balance_nano_usd=6_000)],
        now_unix_ms=ledger_clock(),
    )
    assert result.matched == (("tx1", 1),)
    assert [b.kind for b in result.breaks] == [BreakKind.MISSING_IN_LEDGER, BreakKind.BALANCE_MISMATCH]
    assert await list_runs(ledger.engine) == [run]
    assert [b.kind for b in await run_breaks(ledger.engine, run.id)] == [b.kind for b in result.breaks]

    parser = argparse.ArgumentParser()
    add_ledger_commands(parser.add_subparsers(required=True))
    out = io.StringIO()
    args = parser.parse_args(
        ["reconcile-runs", "--run", str(run.id), "--json", "--database-url", database_url]
    )
    assert await run_ledger_command(args, out=out) == 0
    assert {b["kind"] for b in json.loads(out.getvalue())} == {"missing_in_ledger", "balance_mismatch"}
