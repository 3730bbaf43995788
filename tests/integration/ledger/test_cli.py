"""The ledger CLI on a real database: tables, JSON, and `check` failing loudly on a broken invariant."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger import Ledger
from ledger.cli import add_ledger_commands, run_ledger_command
from tests.fixtures.ledger import open_demo_accounts


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_ledger_commands(parser.add_subparsers(required=True))
    return parser.parse_args(argv)


async def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_ledger_command(parse(*argv), out=out)
    return code, out.getvalue()


async def seeded(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await ledger.post(
        idempotency_key="d",
        code="deposit",
        postings=[("equity:external", 1_000), ("credit:account:alice", -1_000)],
        external_ref="chain:0xabc:1",
    )
    await ledger.hold(
        idempotency_key="h",
        debit_account="credit:account:alice",
        credit_account="provider_payable:openai",
        amount=300,
        timeout_s=60,
    )


async def test_balances_holds_tx_statement_trial_balance(ledger: Ledger, database_url: str) -> None:
    await seeded(ledger)
    code, text = await run("balances", "--database-url", database_url)
    assert code == 0
    assert "credit:account:alice" in text
    assert "1,000" in text
    code, text = await run("balances", "--database-url", database_url, "--json")
    by_name = {b["account"]: b for b in json.loads(text)}
    assert by_name["credit:account:alice"]["available"] == 700
    code, text = await run("holds", "--database-url", database_url, "--json")
    assert [h["amount"] for h in json.loads(text)] == [300]
    code, text = await run("tx", "chain:0xabc:1", "--database-url", database_url)
    assert code == 0
    assert "deposit" in text
    code, text = await run("tx", "nope", "--database-url", database_url)
    assert code == 1
    code, text = await run("statement", "credit:account:alice", "--database-url", database_url, "--json")
    assert json.loads(text)["lines"][0]["balance_after"] == 1_000
    code, text = await run("trial-balance", "--database-url", database_url)
    assert code == 0
    assert "balanced" in text
    code, text = await run("statement", "credit:account:nobody", "--database-url", database_url)
    assert code == 1
    assert "account_not_found" in text


async def test_check_passes_then_fails_on_tampered_cache(ledger: Ledger, database_url: str) -> None:
    await seeded(ledger)
    code, text = await run("check", "--database-url", database_url)
    assert (code, text.strip()) == (0, "ledger check OK: every invariant holds")
    async with ledger.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE ledger_accounts SET credits_posted = 5000 WHERE name = 'credit:account:alice'")
        )
    code, text = await run("check", "--database-url", database_url)
    assert code == 1
    assert "cached_balance_mismatch" in text
    assert "credit:account:alice" in text
    code, text = await run("check", "--database-url", database_url, "--json")
    assert code == 1
    assert {p["kind"] for p in json.loads(text)["problems"]} >= {"cached_balance_mismatch", "unit_unbalanced"}


async def test_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}"
    code, text = await run("balances", "--database-url", url)
    assert code == 2
    assert "no database" in text
    assert not (tmp_path / "absent.db").exists()


def test_default_database_url() -> None:
    assert parse("check").database_url == "sqlite+aiosqlite:///.megarouter/megarouter.db"
    with pytest.raises(SystemExit):
        parse("statement")
