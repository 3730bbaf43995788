"""Org keys are paid by the org and held on every budget above them; a budget that cannot fit a request
refuses it with 429 insufficient_quota / budget_exceeded before anything is held or sent upstream.

Method: the running router (SQLite and PostgreSQL), an org built through the admin API by its owner's wallet
key, funded by a real x402 top-up on Anvil, then chat requests with a member's org key until the team's hard
budget refuses. The ledger is checked after: captures within the budget, nothing left held, books clean.
Rollover runs the org clock (injected) across a UTC midnight.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eth_account import Account

from ledger import check_ledger
from proxy.api.app_keys import (
    ALERT_DETECTORS,
    ALERTS,
    BILLING,
    DB_ENGINE,
    ORG_BUDGET_ALERTS,
    ORG_BUDGET_LEDGER,
    ORGANIZATIONS,
)
from proxy.db.tables import usage_events
from proxy.governance.models import usd_text
from proxy.observability.alerts import evaluate_all
from tests.e2e.accounts.helpers import bearer
from tests.e2e.orgs.conftest import OrgRouterWithClock
from tests.e2e.orgs.helpers import CHAT_BODY, call, chat, created, top_up_org, wallet_key
from tests.fixtures.app import RunningRouter
from tests.fixtures.clock import FakeClock

TOPUP_USD = "0.01"
# About two quotes of CHAT_BODY (each ~11,000 nano-USD): the third request must be refused.
TEAM_BUDGET_USD = "0.000025"


async def _org_with_team(router: RunningRouter, owner_key: str) -> dict[str, Any]:
    org = await created(router, "/v1/orgs", owner_key, {"name": "Acme"})
    base = f"/v1/orgs/{org['id']}"
    department = await created(router, f"{base}/units", owner_key, {"name": "R&D", "kind": "department"})
    team = await created(
        router, f"{base}/units", owner_key, {"name": "Agents", "kind": "team", "parent": department["id"]}
    )
    member = await created(
        router,
        f"{base}/members",
        owner_key,
        {"wallet": Account.create().address, "unit": team["id"], "role": "developer"},
    )
    key = await created(router, f"{base}/keys", owner_key, {"member": member["id"], "name": "agent-1"})
    return {"org": org, "base": base, "department": department, "team": team, "member": member, "key": key}


async def test_hard_team_budget_refuses_before_upstream(router: RunningRouter) -> None:
    owner, owner_key = await wallet_key(router)
    tree = await _org_with_team(router, owner_key)
    base, team = tree["base"], tree["team"]
    assert await top_up_org(router, tree["org"]["id"], owner_key, router.payers[0], TOPUP_USD) == 10_000_000
    budget = await created(
        router,
        f"{base}/budgets",
        owner_key,
        {"scope": {"unit": team["id"]}, "amount_usd": TEAM_BUDGET_USD, "period": "month", "mode": "hard"},
    )
    org_key = tree["key"]["key"]
    charged, statuses = 0, []
    for _ in range(6):
        before = await router.upstream_calls()
        status, document, cost = await chat(router, org_key)
        statuses.append(status)
        if status == 429:
            assert await router.upstream_calls() == before, "a refused request never reaches upstream"
            error = document["error"]
            assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
            assert f"Budget {budget['id']} on unit {team['id']}" in error["message"]
            break
        assert status == 200, document
        charged += cost
    assert (statuses[-1], statuses.count(200) >= 1) == (429, True), statuses
    ledger = router.app[BILLING].ledger
    assert await ledger.open_holds() == []
    assert await check_ledger(router.app[DB_ENGINE]) == []
    status, spent = await call(router, "GET", f"{base}/budgets/{budget['id']}", owner_key)
    assert status == 200, spent
    assert spent["current_period"]["spent_nano_usd"] == charged <= 25_000
    assert spent["current_period"]["held_nano_usd"] == 0
    credit = await ledger.balance(tree["org"]["credit_account"])
    assert credit.posted == 10_000_000 - charged
    # Usage events name the org, unit, member and key; spend groups by them.
    async with router.app[DB_ENGINE].connect() as conn:
        rows = (
            (await conn.execute(sa.select(usage_events).where(usage_events.c.org_id == tree["org"]["id"])))
            .mappings()
            .all()
        )
    assert {(r["org_unit_id"], r["org_member_id"], r["org_key_id"]) for r in rows} == {
        (team["id"], tree["member"]["id"], tree["key"]["id"])
    }
    status, by_member = await call(router, "GET", f"{base}/spend?by=member&period=month", owner_key)
    assert status == 200, by_member
    assert by_member["data"] == [
        {
            "member": tree["member"]["id"],
            "requests": statuses.count(200),
            "cost_nano_usd": charged,
            "input_tokens": by_member["data"][0]["input_tokens"],
            "output_tokens": by_member["data"][0]["output_tokens"],
        }
    ]
    status, audit = await call(router, "GET", f"{base}/audit", owner_key)
    assert status == 200
    actions = [entry["action"] for entry in audit["data"]]
    assert actions[::-1][:7] == [
        "org.create",
        "member.create",
        "unit.create",
        "unit.create",
        "member.create",
        "key.create",
        "credits.topup",
    ]
    newest = audit["data"][0]
    assert (newest["action"], newest["actor"]) == ("budget.create", owner.address.lower())


async def test_org_credit_exhausted_is_429_and_soft_budget_alerts(router: RunningRouter) -> None:
    _, owner_key = await wallet_key(router)
    tree = await _org_with_team(router, owner_key)
    org_key = tree["key"]["key"]
    before = await router.upstream_calls()
    status, document, _ = await chat(router, org_key)
    assert (status, document["error"]["code"]) == (429, "insufficient_org_credit"), document
    assert await router.upstream_calls() == before
    await top_up_org(router, tree["org"]["id"], owner_key, router.payers[0], TOPUP_USD)
    soft = await created(
        router,
        f"{tree['base']}/budgets",
        owner_key,
        {
            "scope": {"key": tree["key"]["id"]},
            "amount_usd": "0.000001",
            "period": "day",
            "mode": "soft",
            "alert_at": [0.5, 1.0],
        },
    )
    for _ in range(2):
        status, document, _ = await chat(router, org_key)
        assert status == 200, document  # A soft budget alerts, never refuses.
    crossings = await router.app[ORG_BUDGET_ALERTS].all(soft["id"])
    assert [c.threshold_bp for c in crossings] == [5_000, 10_000]
    assert len({c.period_start_unix_s for c in crossings}) == 1
    # Each crossing becomes one `budget_threshold` alert of the outbox (webhooks, GET /v1/alerts), once.
    detectors = router.app[ALERT_DETECTORS]
    for _ in range(2):
        await evaluate_all(detectors, timeout_s=30)
    history = await router.app[ALERTS].history(kind="budget_threshold")
    alerted = sorted(
        (alert.payload["threshold_percent"], alert.payload["spent_nano_usd"]) for alert in history.data
    )
    assert [percent for percent, _ in alerted] == [50, 100]
    assert [spent for _, spent in alerted] == sorted(c.spend_nano_usd for c in crossings)
    assert {alert.subject for alert in history.data} == {f"budget:{soft['id']}"}
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def test_daily_budget_rolls_over_at_utc_midnight(org_router_with_clock: OrgRouterWithClock) -> None:
    clock = FakeClock(datetime(2026, 12, 2, 23, 59, 0, tzinfo=UTC).timestamp())
    async with org_router_with_clock(clock) as router:
        assert router.app[ORG_BUDGET_LEDGER].now_unix_s() == int(clock.now_s)
        _, owner_key = await wallet_key(router)
        tree = await _org_with_team(router, owner_key)
        await top_up_org(router, tree["org"]["id"], owner_key, router.payers[0], TOPUP_USD)
        org_key = tree["key"]["key"]
        # One request before any budget tells the quote and the cost; the budget then fits one request only.
        response = await router.client.post("/v1/chat/completions", json=CHAT_BODY, headers=bearer(org_key))
        assert response.status == 200
        quote = int(response.headers["X-MegaRouter-Quote-Nano-USD"])
        cost = int(response.headers["X-MegaRouter-Cost-Nano-USD"])
        budget = await created(
            router,
            f"{tree['base']}/budgets",
            owner_key,
            {
                "scope": {"member": tree["member"]["id"]},
                "amount_usd": usd_text(quote + cost // 2),
                "period": "day",
            },
        )
        status, _, first_cost = await chat(router, org_key)
        assert status == 200
        status, document, _ = await chat(router, org_key)
        assert (status, document["error"]["code"]) == (429, "budget_exceeded"), document
        day_one = int(clock.now_s)
        clock.advance(61)  # 00:00:01 UTC, the next day
        status, _, second_cost = await chat(router, org_key)
        assert status == 200
        budgets = router.app[ORG_BUDGET_LEDGER]
        stored = await router.app[ORGANIZATIONS].get_budget(tree["org"]["id"], budget["id"])
        old = await budgets.spend(stored, at_unix_s=day_one)
        new = await budgets.spend(stored)
        assert (old.spent_nano_usd, old.held_nano_usd) == (first_cost, 0)  # intact
        assert new.spent_nano_usd == second_cost
        assert new.period_start_unix_s == old.period_start_unix_s + 86_400
        # The closing entry returned day one's unspent allowance: nothing left on it.
        assert old.remaining_nano_usd == 0
        assert await check_ledger(router.app[DB_ENGINE]) == []
