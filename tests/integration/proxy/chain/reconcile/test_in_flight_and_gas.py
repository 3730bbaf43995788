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
from proxy.api.app_keys import DB_ENGINE
from proxy.cli.reconcile import EXIT_BREAKS
from proxy.db.tables import account_withdrawals, x402_settlements
from proxy.devnet.simulator import Simulators
from tests.e2e.accounts.helpers import pay_for_credit, signed_withdrawal
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter
from tests.fixtures.chain import token_balance_atomic
from tests.integration.proxy.chain.reconcile.conftest import Books, kinds, recon_router
from tests.integration.proxy.chain.reconcile.test_honest_history_and_cli import _cli
from tests.integration.proxy.chain.watcher.conftest import PrivateChain
from x402.eip3009 import Eip712Domain, random_authorization_nonce, sign_authorization, split_signature
from x402.models import ExactEvmAuthorization
from x402.settle import TRANSFER_WITH_AUTHORIZATION_SELECTOR

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
    data = _TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to, amount_atomic])
    return await _send_call(chain, sender, token, data, priority_wei=priority_wei)


async def _send_call(
    chain: PrivateChain, sender: LocalAccount, to: str, data: bytes, *, priority_wei: int
) -> str:
    """A contract call signed by `sender`, sent and not awaited; returns its hash."""
    block = await chain.w3.eth.get_block("latest")
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": chain.node.chain_id,
        "to": to,
        "value": 0,
        "data": data,
        "gas": 150_000,
        "nonce": await chain.w3.eth.get_transaction_count(sender.address, "pending"),
        "maxPriorityFeePerGas": priority_wei,
        "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + priority_wei,
    }
    raw = sender.sign_transaction(tx).raw_transaction
    return HexBytes(await chain.w3.eth.send_raw_transaction(raw)).to_0x_hex()


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


async def _drain_wallet_by_authorization(
    chain: PrivateChain, wallet: LocalAccount, amount_atomic: int, *, submitter: LocalAccount
) -> str:
    """Moves the settlement wallet's tokens away with an EIP-3009 authorization its key signs, submitted by
    someone else with a high tip (so it is mined before the wallet's own pending transaction); not awaited."""
    token = chain.tokens.usdc
    authorization = ExactEvmAuthorization.model_validate(
        {
            "from": wallet.address,
            "to": chain.accounts[2].address,
            "value": str(amount_atomic),
            "validAfter": "0",
            "validBefore": str(2**40),
            "nonce": random_authorization_nonce(),
        }
    )
    domain = Eip712Domain(
        name=token.name,
        version=token.version,
        chain_id=chain.node.chain_id,
        verifying_contract=token.address,
    )
    v, r, s = split_signature(sign_authorization(wallet, domain, authorization))
    arguments = abi_encode(
        ["address", "address", "uint256", "uint256", "uint256", "bytes32", "uint8", "bytes32", "bytes32"],
        [
            authorization.from_,
            authorization.to,
            authorization.value,
            authorization.valid_after,
            authorization.valid_before,
            bytes.fromhex(authorization.nonce.removeprefix("0x")),
            v,
            r,
            s,
        ],
    )
    return await _send_call(
        chain,
        submitter,
        token.address,
        TRANSFER_WITH_AUTHORIZATION_SELECTOR + arguments,
        priority_wei=50 * 10**9,
    )


async def test_a_reverted_withdrawal_books_its_gas_once_and_releases_the_credit(
    router: RunningRouter, recon_chain: PrivateChain
) -> None:
    start_block = await recon_chain.w3.eth.block_number + 1
    payer = router.payers[0]
    await pay_for_credit(router, payer, max_tokens=32)
    ledger = _books(router, recon_chain, start_block).ledger
    credit = chart.credit_wallet(payer.address)
    credit_before = (await ledger.balance(credit)).available
    gas_before = (await ledger.balance(chart.gas_expense(router.settings.network))).posted
    wallet_atomic = await token_balance_atomic(
        recon_chain.w3, recon_chain.tokens.usdc.address, router.settlement_wallet
    )

    async with manual_mining(recon_chain):
        withdrawing = asyncio.create_task(
            router.client.post("/v1/credits/withdraw", json=signed_withdrawal(router, payer, amount_atomic=1))
        )
        await _until(lambda: _has_pending(recon_chain, 1), "the withdrawal transfer is in the mempool")
        await _drain_wallet_by_authorization(
            recon_chain, router.settlement_account, wallet_atomic, submitter=recon_chain.accounts[3]
        )
        await recon_chain.rpc("evm_mine")
        response = await withdrawing

    assert response.status == 502, await response.text()
    assert (await response.json())["error"]["code"] == "withdrawal_failed"
    assert (await ledger.balance(credit)).available == credit_before
    async with router.app[DB_ENGINE].connect() as connection:
        (tx_hash,) = (await connection.execute(select(account_withdrawals.c.tx_hash))).one()
    receipt = await recon_chain.w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 0
    withdrawal_gas_wei = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    gas_after = (await ledger.balance(chart.gas_expense(router.settings.network))).posted
    assert gas_after - gas_before == withdrawal_gas_wei

    report = await _books(router, recon_chain, start_block).reconcile(from_block=start_block)
    # The drained tokens are nobody's booking (a break, as they should be); the gas of both of the wallet's
    # transactions, the settlement and the reverted withdrawal, is booked exactly.
    assert (report.gas.transactions, report.gas.reverted) == (2, 1)
    assert report.gas.chain_gas_wei == report.gas.booked_gas_wei == gas_after
    assert all(not (b.external_ref or "").endswith(":gas") for b in report.breaks)
