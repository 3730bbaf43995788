"""Issue 9 item 4: gas griefing and gas that is never booked.

Goal: a payer whose balance covers one payment cannot get two concurrent authorizations both sent (the
second is refused with insufficient_funds before any transaction); a settlement that reverts anyway books its
gas once, fails its intent and deposits nothing, and reconciliation stays clean; native coin spent by the
settlement wallet and never booked is a reconciliation break.

Method: the real app on the module's private Anvil, settling into a fresh wallet. "Blocks are slow" is made
deterministic with Anvil's manual mining (`evm_setAutomine false`, then `evm_mine`): a settlement sent stays
pending until the test mines. Payers are fresh accounts holding exactly the balance each case needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import chart
from proxy.app_keys import DB_ENGINE
from proxy.db.tables import x402_settlements
from proxy.reconcile_cli import EXIT_BREAKS
from proxy.simulator import Simulators
from tests.e2e.accounts.helpers import pay_for_credit
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter
from tests.integration.reconcile.conftest import Books, kinds, recon_router
from tests.integration.reconcile.test_honest_history_and_cli import _cli
from tests.integration.watcher.conftest import PrivateChain

pytestmark = pytest.mark.anvil

CHAT_BODY = {
    "model": "openai/gpt-4o-mini",
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "Hi."}],
}
PAYER_GAS_WEI = 10**18
# Bounded waits for the app to reach a state (a transaction in the mempool, a request finished).
POLL_S = 0.02
POLLS_MAX = 1_000
_TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")


@pytest.fixture
async def router(
    aiohttp_client: Any,
    recon_chain: PrivateChain,
    wallet: LocalAccount,
    simulator: Simulators,
    database_url: str,
) -> AsyncIterator[RunningRouter]:
    running = await recon_router(aiohttp_client, recon_chain, wallet, simulator, database_url)
    try:
        yield running
    finally:
        await running.w3.provider.disconnect()


@contextlib.asynccontextmanager
async def manual_mining(chain: PrivateChain) -> AsyncIterator[None]:
    """Blocks are mined only when the test says `evm_mine`: "slow blocks", deterministically."""
    await chain.rpc("evm_setAutomine", [False])
    try:
        yield
    finally:
        await chain.rpc("evm_setAutomine", [True])


def _books(router: RunningRouter, chain: PrivateChain, start_block: int) -> Books:
    engine: AsyncEngine = router.app[DB_ENGINE]
    return Books(chain=chain, wallet=router.settlement_account, engine=engine, start_block=start_block)


async def _offer(router: RunningRouter) -> dict[str, Any]:
    response = await router.client.post("/v1/chat/completions", json=CHAT_BODY)
    assert response.status == 402
    offer: dict[str, Any] = await response.json()
    return offer


async def _funded_payer(chain: PrivateChain, *, usdc_atomic: int) -> LocalAccount:
    """A new payer holding exactly `usdc_atomic` USDC (sent from account 1) and ETH to move it on."""
    payer: LocalAccount = Account.create()
    await chain.rpc("anvil_setBalance", [payer.address, hex(PAYER_GAS_WEI)])
    await chain.transfer(chain.accounts[1], chain.tokens.usdc.address, payer.address, usdc_atomic)
    return payer


async def _pay(router: RunningRouter, payer: LocalAccount, offer: dict[str, Any]) -> ClientResponse:
    header = encode_b64_json(sign_v2_payment(payer, offer))
    return await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )


async def _pending_count(chain: PrivateChain) -> int:
    status = await chain.rpc("txpool_status")
    return int(status["pending"], 16)


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(POLLS_MAX):
        if await condition():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"never happened: {what}")


async def _statuses(router: RunningRouter) -> list[str]:
    async with router.app[DB_ENGINE].connect() as connection:
        rows = await connection.execute(select(x402_settlements.c.status).order_by(x402_settlements.c.id))
        return [str(status) for (status,) in rows]


async def _send_transfer(
    chain: PrivateChain, sender: LocalAccount, token: str, to: str, amount_atomic: int, *, priority_wei: int
) -> str:
    """An ERC-20 transfer sent and not awaited (blocks are mined by the test)."""
    block = await chain.w3.eth.get_block("latest")
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": chain.node.chain_id,
        "to": token,
        "value": 0,
        "data": _TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to, amount_atomic]),
        "gas": 100_000,
        "nonce": await chain.w3.eth.get_transaction_count(sender.address, "pending"),
        "maxPriorityFeePerGas": priority_wei,
        "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + priority_wei,
    }
    return HexBytes(
        await chain.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    ).to_0x_hex()


async def test_two_concurrent_authorizations_beyond_the_balance_send_one_transaction(
    router: RunningRouter, recon_chain: PrivateChain
) -> None:
    start_block = await recon_chain.w3.eth.block_number + 1
    offer = await _offer(router)
    quote_atomic = int(offer["accepts"][0]["amount"])
    payer = await _funded_payer(recon_chain, usdc_atomic=quote_atomic + quote_atomic // 2)

    async with manual_mining(recon_chain):
        first = asyncio.create_task(_pay(router, payer, offer))
        await _until(lambda: _has_pending(recon_chain, 1), "the first settlement is in the mempool")
        # Both authorizations pass every check alone (balance ≥ amount); together they exceed it. Before
        # the fix the second was sent as well and reverted on chain; now it is refused before any transaction.
        second = asyncio.create_task(_pay(router, payer, offer))
        await _until(lambda: _done_or_pending(second, recon_chain, 2), "the second request ends or sends")
        await recon_chain.rpc("evm_mine")
        first_response, second_response = await first, await second

    assert first_response.status == 200, await first_response.text()
    assert second_response.status == 402, await second_response.text()
    assert decode_b64_json(second_response.headers["PAYMENT-REQUIRED"])["error"] == "insufficient_funds"
    assert await _statuses(router) == ["booked"]
    report = await _books(router, recon_chain, start_block).reconcile(from_block=start_block)
    assert report.clean, report.breaks
    assert (report.gas.transactions, report.gas.reverted) == (1, 0)


async def _has_pending(chain: PrivateChain, count: int) -> bool:
    return await _pending_count(chain) >= count


async def _done_or_pending(task: asyncio.Task[Any], chain: PrivateChain, count: int) -> bool:
    return task.done() or await _has_pending(chain, count)


async def test_a_reverted_settlement_books_its_gas_once_and_reconciles_clean(
    router: RunningRouter, recon_chain: PrivateChain
) -> None:
    start_block = await recon_chain.w3.eth.block_number + 1
    offer = await _offer(router)
    quote_atomic = int(offer["accepts"][0]["amount"])
    payer = await _funded_payer(recon_chain, usdc_atomic=quote_atomic)

    async with manual_mining(recon_chain):
        paying = asyncio.create_task(_pay(router, payer, offer))
        await _until(lambda: _has_pending(recon_chain, 1), "the settlement is in the mempool")
        # Between verification and mining the payer moves its funds away, with a higher tip: mined first.
        sink = recon_chain.accounts[2].address
        await _send_transfer(
            recon_chain, payer, recon_chain.tokens.usdc.address, sink, quote_atomic, priority_wei=50 * 10**9
        )
        await recon_chain.rpc("evm_mine")
        response = await paying

    assert response.status == 402, await response.text()
    assert decode_b64_json(response.headers["PAYMENT-REQUIRED"])["error"] == "transaction_failed"
    assert await _statuses(router) == ["failed"]
    ledger = _books(router, recon_chain, start_block).ledger
    # No deposit: the payer's credit account was never even opened.
    assert chart.credit_wallet(payer.address) not in {account.name for account in await ledger.accounts()}
    network = router.settings.network
    gas_wei = (await ledger.balance(chart.gas_expense(network))).posted
    native_wei = (await ledger.balance(chart.native_cash(network, router.settlement_wallet))).posted
    assert gas_wei > 0
    assert native_wei == -gas_wei

    report = await _books(router, recon_chain, start_block).reconcile(from_block=start_block)
    assert report.clean, report.breaks
    assert (report.gas.transactions, report.gas.reverted) == (1, 1)
    assert report.gas.chain_gas_wei == report.gas.booked_gas_wei == gas_wei
    assert report.receipts.reverted != ()


async def test_unbooked_native_spend_from_the_settlement_wallet_is_a_break(
    router: RunningRouter, recon_chain: PrivateChain, tmp_path: Path
) -> None:
    start_block = await recon_chain.w3.eth.block_number + 1
    await pay_for_credit(router, router.payers[0], max_tokens=32)
    books = _books(router, recon_chain, start_block)
    assert (await books.reconcile(from_block=start_block)).clean

    # Someone uses the settlement key by hand: the transaction's gas is spent and nobody books it.
    planted = await _send_transfer(
        recon_chain,
        router.settlement_account,
        recon_chain.tokens.usdc.address,
        router.settlement_wallet,
        1,
        priority_wei=10**9,
    )
    report = await books.reconcile(from_block=start_block)
    assert kinds(report) == ["missing_in_ledger"]
    (gas_break,) = report.breaks
    assert gas_break.external_ref == f"{router.settings.network}:{planted}:gas".lower()
    assert gas_break.account == chart.native_cash(router.settings.network, router.settlement_wallet)
    assert report.gas.chain_gas_wei - report.gas.booked_gas_wei == -(gas_break.external_amount_nano_usd or 0)

    state = tmp_path / ".megarouter"
    state.mkdir()
    record = {
        "chain_id": recon_chain.node.chain_id,
        "usdc": recon_chain.tokens.usdc.address,
        "usdt": recon_chain.tokens.usdt.address,
        "settlement_wallet": router.settlement_wallet,
        "chain_watch_confirmations": 0,
    }
    (state / "devnet.json").write_text(json.dumps(record))
    database_url = router.settings.database_url
    rpc = recon_chain.node.rpc_url
    code, output = await _cli(
        tmp_path, "--database-url", database_url, "--rpc-url", rpc, "--from-block", str(start_block)
    )
    assert code == EXIT_BREAKS, output
    assert f"{planted}:gas".lower() in output
