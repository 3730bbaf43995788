"""Issue 9 item 8: a chain outage is a 503 with Retry-After, never a 402 that invites the agent to pay again.

Method: the real app whose chain RPC URL points at a port where nothing listens (the offer needs no chain),
and the same app against a private Anvil that is stopped after the offer was made. The paid request must be
answered 503 `chain_unavailable` with Retry-After, and nothing may be stored or sent upstream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from ledger.tables import EntryRow, HoldRow
from proxy.api.app_keys import DB_ENGINE
from proxy.db.tables import x402_settlements
from proxy.devnet.anvil import AnvilNode, free_tcp_port
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.payments.errors import CHAIN_RETRY_AFTER_S
from tests.e2e.accounts.helpers import signed_withdrawal
from tests.e2e.api.support import credit_balance, topup
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter, router_settings, start_router
from tests.fixtures.chain import private_devnet

pytestmark = pytest.mark.anvil

CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Name three primary colours."}],
    "max_tokens": 16,
}


async def _paid_request_meets_an_outage(router: RunningRouter) -> None:
    offer_response = await router.client.post("/v1/chat/completions", json=CHAT_BODY)
    assert offer_response.status == 402
    offer = await offer_response.json()
    before = await _stored_and_served(router)
    header = encode_b64_json(sign_v2_payment(router.payers[0], offer))
    response = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 503, await response.text()
    assert response.headers["Retry-After"] == str(CHAIN_RETRY_AFTER_S)
    assert "PAYMENT-REQUIRED" not in response.headers
    error = (await response.json())["error"]
    assert (error["code"], error["type"]) == ("chain_unavailable", "api_error")
    assert await _stored_and_served(router) == before


async def _stored_and_served(router: RunningRouter) -> tuple[int, int, int, int]:
    """(ledger entries, holds, settlement intents, upstream calls); the chain is out of reach here."""
    async with router.app[DB_ENGINE].connect() as connection:
        entries, holds, intents = [
            (await connection.execute(select(func.count()).select_from(table))).scalar_one()
            for table in (EntryRow, HoldRow, x402_settlements)
        ]
    return entries, holds, intents, await router.upstream_calls()


@pytest.fixture
async def dead_rpc_router(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> AsyncIterator[RunningRouter]:
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=anvil_accounts[0].key.hex(),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
    ).model_copy(update={"chain_rpc_url": f"http://127.0.0.1:{free_tcp_port()}"})
    async with start_router(
        aiohttp_client,
        settings,
        anvil=anvil,
        tokens=tokens,
        anvil_accounts=anvil_accounts,
        simulator=simulator,
    ) as router:
        yield router


async def test_unreachable_rpc_is_503_with_retry_after(dead_rpc_router: RunningRouter) -> None:
    await _paid_request_meets_an_outage(dead_rpc_router)


@contextlib.asynccontextmanager
async def _router_on_a_private_chain(
    aiohttp_client: Any, anvil_accounts: list[LocalAccount], simulator: Simulators, database_url: str
) -> AsyncIterator[tuple[RunningRouter, AnvilNode]]:
    """A router on its own Anvil (account 1 funded), so a test may stop that chain under it."""
    async with private_devnet(anvil_accounts[0], recipients=anvil_accounts[1:2], amount_atomic=10**9) as (
        node,
        _,
        private_tokens,
    ):
        settings = router_settings(
            anvil=node,
            tokens=private_tokens,
            settlement_key=anvil_accounts[0].key.hex(),
            simulator_base_url=simulator.base_url,
            database_url=database_url,
        )
        async with start_router(
            aiohttp_client,
            settings,
            anvil=node,
            tokens=private_tokens,
            anvil_accounts=anvil_accounts,
            simulator=simulator,
        ) as router:
            yield router, node


async def _stop(node: AnvilNode) -> None:
    node.process.terminate()
    await node.process.wait()


async def test_a_stopped_chain_is_503_with_retry_after(
    aiohttp_client: Any, anvil_accounts: list[LocalAccount], simulator: Simulators, database_url: str
) -> None:
    async with _router_on_a_private_chain(aiohttp_client, anvil_accounts, simulator, database_url) as (
        router,
        node,
    ):
        await _stop(node)
        await _paid_request_meets_an_outage(router)


async def test_a_withdrawal_meeting_a_stopped_chain_is_503_and_keeps_the_credit(
    aiohttp_client: Any, anvil_accounts: list[LocalAccount], simulator: Simulators, database_url: str
) -> None:
    """The sibling on the way out: a withdrawal that cannot reach the chain is 503 with Retry-After (not a
    502 "failed"), nothing was signed, and the wallet's credit is whole again."""
    async with _router_on_a_private_chain(aiohttp_client, anvil_accounts, simulator, database_url) as (
        router,
        node,
    ):
        payer = router.payers[0]
        await topup(router, payer, amount_usd="1")
        before = await credit_balance(router, payer)
        await _stop(node)
        body = signed_withdrawal(router, payer, amount_atomic=250_000)
        response = await router.client.post("/v1/credits/withdraw", json=body)
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == str(CHAIN_RETRY_AFTER_S)
        assert (await response.json())["error"]["code"] == "chain_unavailable"
        after = await credit_balance(router, payer)
        assert (after.posted, after.available, after.pending) == (before.posted, before.available, 0)
