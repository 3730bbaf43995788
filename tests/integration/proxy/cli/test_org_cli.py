"""`megarouter org …`: an operator creates an org for an owner wallet, lists, shows and audits it.

Method: the real command line (`proxy.cli.main`) against a migrated database (SQLite and PostgreSQL), its
JSON output parsed; bad arguments and unknown orgs exit non-zero with a message.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from ledger import create_ledger_engine, migrate
from proxy.cli import main
from proxy.db.migrate import migrate_proxy
from proxy.governance.models import BudgetMode, ScopeKind, UnitKind
from proxy.governance.periods import Period
from proxy.governance.store import Organizations

OWNER = "0x" + "ab" * 20


async def _migrated(database_url: str) -> None:
    engine = create_ledger_engine(database_url)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
    finally:
        await engine.dispose()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_create_list_show_audit(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    await _migrated(database_url)
    db = ["org", "--database-url", database_url, "--json"]
    code, out, _ = await asyncio.to_thread(_run, capsys, *db, "create", "--name", "Acme", "--owner", OWNER)
    assert code == 0
    org = json.loads(out)
    engine = create_ledger_engine(database_url)
    try:
        orgs = Organizations(engine)
        team = await orgs.create_unit(org["id"], actor=OWNER, name="T", parent_id=None, kind=UnitKind.TEAM)
        await orgs.create_budget(
            org["id"],
            actor=OWNER,
            scope_kind=ScopeKind.UNIT,
            scope_id=team.id,
            amount_nano_usd=5 * 10**9,
            period=Period.MONTH,
            mode=BudgetMode.HARD,
            alert_at_bp=(8_000,),
        )
    finally:
        await engine.dispose()
    code, out, _ = await asyncio.to_thread(_run, capsys, *db, "list")
    assert (code, [o["name"] for o in json.loads(out)]) == (0, ["Acme"])
    code, out, _ = await asyncio.to_thread(_run, capsys, *db, "show", str(org["id"]))
    shown = json.loads(out)
    assert code == 0
    assert [m["wallet"] for m in shown["members"]] == [OWNER]
    assert [(b["scope_id"], b["amount_nano_usd"], b["spent_nano_usd"]) for b in shown["budgets"]] == [
        (team.id, 5 * 10**9, 0)
    ]
    code, out, _ = await asyncio.to_thread(_run, capsys, *db, "audit", str(org["id"]))
    assert [e["action"] for e in json.loads(out)] == [
        "budget.create",
        "unit.create",
        "member.create",
        "org.create",
    ]
    code, _, err = await asyncio.to_thread(_run, capsys, *db, "show", "999")
    assert (code, "no organization 999" in err) == (1, True)
    code, _, err = await asyncio.to_thread(_run, capsys, *db, "create", "--name", "X", "--owner", "nope")
    assert code == 2
