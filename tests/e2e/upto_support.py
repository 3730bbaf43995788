"""Shared by the `upto` end-to-end tests: a private chain (so the settlement wallet's history is only the
test's own and reconciliation can tie it out), the router on it, and the checks of what was booked."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Ledger, chart, check_ledger, unix_ms_now
from proxy.api.app_keys import DB_ENGINE, PAYMENT_GATE
from proxy.chain.reconcile import ReconcileScope, reconcile_settlement_wallet
from proxy.chain.watcher import ChainWatcher, WatchedToken, WatcherSettings
from proxy.chart_accounts import ChartAccounts
from proxy.db.tables import x402_settlements
from proxy.devnet.simulator import Simulators
from tests.e2e.payments import encode_b64_json
from tests.fixtures.app import RunningRouter
from tests.integration.proxy.chain.reconcile.conftest import recon_router
from tests.integration.proxy.chain.watcher.conftest import PrivateChain
from x402.models import PaymentRequirements, to_wire
from x402.upto_client import sign_upto_payment

__all__ = [
    "CHAT_BODY",
    "NETWORK",
    "WALLET_GAS_WEI",
    "assert_books_clean",
    "intent_rows",
    "new_wallet",
    "private_router",
    "upto_offer",
    "upto_payment_header",
]

NETWORK = "eip155:31337"
WALLET_GAS_WEI = 10**20
CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is 2+2?"}],
    "max_tokens": 200,
}


async def new_wallet(chain: PrivateChain) -> LocalAccount:
    """A fresh settlement wallet with gas money: its token history is this test's alone."""
    wallet: LocalAccount = Account.create()
    await chain.rpc("anvil_setBalance", [wallet.address, hex(WALLET_GAS_WEI)])
    return wallet


@contextlib.asynccontextmanager
async def private_router(
    aiohttp_client: Any,
    chain: PrivateChain,
    simulator: Simulators,
    database_url: str,
    **overrides: Any,
) -> AsyncIterator[tuple[RunningRouter, LocalAccount]]:
    wallet = await new_wallet(chain)
    router = await recon_router(aiohttp_client, chain, wallet, simulator, database_url, **overrides)
    try:
        yield router, wallet
    finally:
        await router.w3.provider.disconnect()


async def upto_offer(router: RunningRouter, body: dict[str, Any], *, asset: str) -> PaymentRequirements:
    response = await router.client.post("/v1/chat/completions", json=body)
    assert response.status == 402
    offer = await response.json()
    [entry] = [e for e in offer["accepts"] if e["scheme"] == "upto" and e["asset"].lower() == asset.lower()]
    return PaymentRequirements.model_validate(entry)


def upto_payment_header(payer: LocalAccount, requirements: PaymentRequirements, **kwargs: Any) -> str:
    payload = sign_upto_payment(payer, requirements, now_unix_s=int(time.time()), **kwargs)
    return encode_b64_json(to_wire(payload))


async def intent_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(x402_settlements).order_by(x402_settlements.c.id))).mappings()
        return [dict(row) for row in rows.all()]


async def assert_books_clean(
    router: RunningRouter, wallet: LocalAccount, *, start_block: int, upto_settlements: int = 0
) -> None:
    """The chain watcher leaves upto settlements to the payment path (no second booking), the ledger checks
    clean, every upto promise drained, and the wallet reconciles with the chain."""
    engine: AsyncEngine = router.app[DB_ENGINE]
    tokens = tuple(WatchedToken(address=t.address, decimals=t.decimals) for t in router.tokens.all())
    watcher_settings = WatcherSettings(
        network=NETWORK,
        settlement_wallet=wallet.address,
        tokens=tokens,
        confirmations=0,
        start_block=start_block,
    )
    accounts = ChartAccounts(Ledger(engine))
    watcher = ChainWatcher(router.w3, settings=watcher_settings, accounts=accounts, engine=engine)
    watched = await watcher.poll_once()
    assert (watched.booked, watched.skipped_x402) == (0, upto_settlements)
    assert await check_ledger(engine) == []
    ledger = Ledger(engine)
    for token in router.tokens.all():
        names = {a.name for a in await ledger.accounts()}
        if (in_transit := chart.in_transit(NETWORK, token.address)) in names:
            assert (await ledger.balance(in_transit)).posted == 0
    scope = ReconcileScope(network=NETWORK, settlement_wallet=wallet.address, tokens=tokens, confirmations=0)
    report = await reconcile_settlement_wallet(
        router.w3, ledger, scope, from_block=start_block, now_unix_ms=unix_ms_now()
    )
    assert report.clean, report.breaks
    assert router.app[PAYMENT_GATE].settlement_wallet == wallet.address
