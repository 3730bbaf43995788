#!/usr/bin/env python3
"""What a budget check adds to a request's CPU: the billing path of a wallet key vs an org key under budgets.

Baseline, measured in the same run: what a wallet-keyed request costs the billing path, `Billing.open` (one
hold on the wallet's credit) then `BillingSession.charge` (capture with its usage event). Measured: the same
for an org key whose path carries `--budgets` hard budgets (the key's, the member's, the team's… up to 4):
reading the budgets on the key's path, the lock-free pre-check of each allowance, the hold group (payer +
one hold per budget, one transaction) and the group capture. Both run in this process, one request at a
time, alternating batches so that drift hits both alike; CPU is this process's `time.process_time()` (the
database is SQLite in this process, or PostgreSQL with --pg-dsn: then its server's CPU is not counted).

Prints CPU µs per request for both, the difference, and the ratio. Bounded: 2 × --requests requests.

Usage: .venv/bin/python scripts/bench/budget_check.py [--requests N] [--budgets B] [--database-url URL]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import structlog
from _harness import bench_main, load_average_line, machine_description

from ledger import Ledger, Posting, chart, check_ledger, create_ledger_engine, migrate
from proxy.catalog import load_catalog
from proxy.chart_accounts import ChartAccounts
from proxy.db.migrate import migrate_proxy
from proxy.governance.budgets import BudgetLedger, StoredBudgetAlerts
from proxy.governance.enforcement import OrgBudgets
from proxy.governance.models import BudgetMode, OrgPrincipal, ScopeKind, UnitKind
from proxy.governance.periods import Period
from proxy.governance.rate_limits import InProcessCounters, RateLimiter
from proxy.governance.roles import Role
from proxy.governance.store import Organizations
from proxy.providers.base import TokenUsage
from proxy.request_ids import new_request_id
from proxy.serving.billing import Billing
from proxy.serving.usage_log import UsageLog

MODEL_ID = "openai/gpt-4o-mini"
QUOTE_NANO_USD = 20_000
BATCH = 25
WALLET = "0x" + "22" * 20


async def _org_principal(orgs: Organizations, budgets: int) -> OrgPrincipal:
    """An org → department → team → member with a key; `budgets` hard monthly budgets on its path."""
    org = await orgs.create_org(name="bench", owner_wallet=WALLET)
    department = await orgs.create_unit(
        org.id, actor=WALLET, name="d", parent_id=None, kind=UnitKind.DEPARTMENT
    )
    team = await orgs.create_unit(org.id, actor=WALLET, name="t", parent_id=department.id, kind=UnitKind.TEAM)
    member = await orgs.create_member(
        org.id, actor=WALLET, wallet="0x" + "33" * 20, unit_id=team.id, role=Role.DEVELOPER
    )
    secret, key = await orgs.create_key(org.id, actor=WALLET, name="k", unit_id=team.id, member_id=member.id)
    scopes = [
        (ScopeKind.KEY, key.id),
        (ScopeKind.MEMBER, member.id),
        (ScopeKind.UNIT, team.id),
        (ScopeKind.UNIT, department.id),
    ]
    for scope_kind, scope_id in scopes[:budgets]:
        await orgs.create_budget(
            org.id,
            actor=WALLET,
            scope_kind=scope_kind,
            scope_id=scope_id,
            amount_nano_usd=10**15,
            period=Period.MONTH,
            mode=BudgetMode.HARD,
            alert_at_bp=(),
        )
    return await orgs.authenticate_key(secret)


async def _cpu_us_per_request(run: Callable[[], Awaitable[None]], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        await run()
    return (time.process_time() - started) * 1e6 / count


async def _bench(requests: int, budgets: int, database_url: str) -> None:
    engine = create_ledger_engine(database_url)
    await migrate(engine)
    await migrate_proxy(engine)
    ledger = Ledger(engine)
    accounts = ChartAccounts(ledger)
    orgs = Organizations(engine)
    principal = await _org_principal(orgs, budgets)
    wallet_credit = chart.credit_wallet(WALLET)
    await accounts.ensure([wallet_credit, principal.credit_account, chart.EQUITY_EXTERNAL])
    for index, account in enumerate((wallet_credit, principal.credit_account)):
        await ledger.post(
            idempotency_key=f"fund{index}",
            code="deposit",
            postings=[
                Posting(account=chart.EQUITY_EXTERNAL, amount=10**15),
                Posting(account=account, amount=-(10**15)),
            ],
        )
    org_budgets = OrgBudgets(
        orgs, BudgetLedger(ledger, alerts=StoredBudgetAlerts(engine)), RateLimiter(InProcessCounters())
    )
    billing = Billing(
        ledger=ledger,
        accounts=accounts,
        usage_log=UsageLog(engine),
        catalog_version="bench",
        hold_timeout_s=900,
        instance_id=lambda: "bench",
        org_budgets=org_budgets,
    )
    model = load_catalog().get(MODEL_ID)
    usage = TokenUsage(input_tokens=20, output_tokens=10)

    async def wallet_request() -> None:
        session = await billing.open(
            request_id=new_request_id(),
            payer_account=wallet_credit,
            api_key_id=1,
            amount_nano_usd=QUOTE_NANO_USD,
            first_provider=model.provider,
            strategy=None,
            streamed=False,
        )
        await session.charge(model, usage, attempts=[], outcome="completed")

    async def org_request() -> None:
        on_path = await org_budgets.budgets_on_path(principal)
        legs = await org_budgets.hold_legs(on_path, QUOTE_NANO_USD)
        session = await billing.open(
            request_id=new_request_id(),
            payer_account=principal.credit_account,
            api_key_id=None,
            amount_nano_usd=QUOTE_NANO_USD,
            first_provider=model.provider,
            strategy=None,
            streamed=False,
            org=principal,
            budgets=on_path,
            budget_legs=legs,
        )
        await session.charge(model, usage, attempts=[], outcome="completed")

    for warm in (wallet_request, org_request):
        await _cpu_us_per_request(warm, BATCH)
    wallet_us, org_us = [], []
    for _ in range(max(1, requests // BATCH)):
        wallet_us.append(await _cpu_us_per_request(wallet_request, BATCH))
        org_us.append(await _cpu_us_per_request(org_request, BATCH))
    assert await check_ledger(engine) == []
    await engine.dispose()
    wallet_mean, org_mean = sum(wallet_us) / len(wallet_us), sum(org_us) / len(org_us)
    print(
        f"budget check CPU ({engine.dialect.name}, {budgets} hard budgets on the key's path, "
        f"{len(org_us) * BATCH} requests each)"
    )
    print(f"  wallet key (baseline): {wallet_mean:8.0f} µs CPU per request (billing path: hold + capture)")
    print(f"  org key + budgets:     {org_mean:8.0f} µs CPU per request")
    print(f"  added by budgets:      {org_mean - wallet_mean:8.0f} µs, ratio {org_mean / wallet_mean:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--budgets", type=int, default=2, choices=range(0, 5))
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    # Per-request info logs would be most of the CPU measured: warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(machine_description())
    print(load_average_line("before"))
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite+aiosqlite:///{directory}/bench.db"
        status = bench_main(lambda: _bench(args.requests, args.budgets, url))
    print(load_average_line("after"))
    return status


if __name__ == "__main__":
    sys.exit(main())
