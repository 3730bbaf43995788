"""The chain watcher books each plain transfer to the settlement wallet exactly once: across polls, across
a restart (a new watcher on the same database), across a depth-1 reorganisation, and never before its
confirmations; mints and zero-value transfers are not deposits; batches are bounded.

Method: a private Anvil per module (reverting snapshots there disturbs no other test), a fresh SQLite
database per test, and each test watching only blocks it mines itself (`start_block` = head + 1).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Posting, chart
from proxy.chain.transfers import transfer_external_ref
from proxy.chain.watcher import ChainWatcher, PollReport, WatchedToken, WatcherSettings
from proxy.chart_accounts import ChartAccounts
from proxy.db.tables import chain_watch_cursors
from proxy.devnet.tokens import mint
from proxy.governance.store import Organizations
from tests.integration.proxy.chain.watcher.conftest import PrivateChain

pytestmark = pytest.mark.anvil

NETWORK = "eip155:31337"
NANO_USD_PER_ATOMIC = 1_000


async def _watcher(
    chain: PrivateChain, accounts: ChartAccounts, engine: AsyncEngine, **overrides: Any
) -> ChainWatcher:
    settings = WatcherSettings(
        network=NETWORK,
        settlement_wallet=chain.wallet.address,
        tokens=tuple(WatchedToken(address=t.address, decimals=t.decimals) for t in chain.tokens.all()),
        **{"confirmations": 0, "start_block": await chain.w3.eth.block_number + 1, **overrides},
    )
    return ChainWatcher(chain.w3, settings=settings, accounts=accounts, engine=engine)


async def _credit_nano_usd(accounts: ChartAccounts, address: str) -> int:
    name = chart.credit_wallet(address)
    if name not in {info.name for info in await accounts.ledger.accounts()}:
        return 0
    return (await accounts.ledger.balance(name)).posted


async def _deposit_count(accounts: ChartAccounts, tx_hash: str) -> int:
    transactions = await accounts.ledger.transactions(limit=1_000)
    return sum(1 for t in transactions if t.metadata.get("tx_hash") == tx_hash)


async def test_plain_transfer_is_booked_once_to_the_sender(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain, sender = private_chain, private_chain.accounts[1]
    watcher = await _watcher(chain, chart_accounts, watcher_engine)
    tx_hash, _ = await chain.transfer(sender, chain.tokens.usdc.address, chain.wallet.address, 5_000_000)
    first = await watcher.poll_once()
    assert (first.booked, first.already_booked) == (1, 0)
    assert (await watcher.poll_once()).booked == 0
    assert await _credit_nano_usd(chart_accounts, sender.address) == 5_000_000 * NANO_USD_PER_ATOMIC
    [booked] = [t for t in await chart_accounts.ledger.transactions() if t.code == "transfer_deposit"]
    assert booked.external_ref == transfer_external_ref(NETWORK, tx_hash, 0)
    assert booked.idempotency_key == f"transfer:{booked.external_ref}"
    cash = chart.cash(NETWORK, chain.tokens.usdc.address, chain.wallet.address)
    assert (await chart_accounts.ledger.balance(cash)).posted == 5_000_000 * NANO_USD_PER_ATOMIC


async def test_restart_resumes_from_the_stored_cursor_without_double_booking(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain, sender = private_chain, private_chain.accounts[2]
    first = await _watcher(chain, chart_accounts, watcher_engine)
    tx_hash, _ = await chain.transfer(sender, chain.tokens.usdt.address, chain.wallet.address, 750_000)
    assert (await first.poll_once()).booked == 1
    # A new process: new watcher, new ChartAccounts, same database. Its start_block is later, but the
    # stored cursor wins, and a transfer mined while it was down is booked.
    restarted_accounts = ChartAccounts(chart_accounts.ledger)
    tx_hash_2, _ = await chain.transfer(sender, chain.tokens.usdt.address, chain.wallet.address, 250_000)
    restarted = await _watcher(chain, restarted_accounts, watcher_engine, start_block=10**6)
    report = await restarted.poll_once()
    assert (report.booked, report.already_booked) == (1, 0)
    # Losing the cursor altogether re-scans from start_block: every booking is found, none is repeated.
    async with watcher_engine.begin() as connection:
        await connection.execute(delete(chain_watch_cursors))
    rescanned = await _watcher(
        chain, restarted_accounts, watcher_engine, start_block=first.settings.start_block
    )
    again = await rescanned.poll_once()
    assert (again.booked, again.already_booked) == (0, 2)
    assert await _deposit_count(chart_accounts, tx_hash) == 1
    assert await _deposit_count(chart_accounts, tx_hash_2) == 1
    assert await _credit_nano_usd(chart_accounts, sender.address) == 1_000_000 * NANO_USD_PER_ATOMIC


async def test_transfer_waits_for_its_confirmations(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain = private_chain
    watcher = await _watcher(chain, chart_accounts, watcher_engine, confirmations=2)
    await chain.transfer(chain.accounts[3], chain.tokens.usdc.address, chain.wallet.address, 1_000)
    assert (await watcher.poll_once()).booked == 0
    await chain.rpc("evm_mine")
    assert (await watcher.poll_once()).booked == 0
    await chain.rpc("evm_mine")
    assert (await watcher.poll_once()).booked == 1


async def test_depth_one_reorg_with_one_confirmation_books_only_the_surviving_transfer(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain, reverted_sender, surviving_sender = (
        private_chain,
        private_chain.accounts[1],
        private_chain.accounts[2],
    )
    watcher = await _watcher(chain, chart_accounts, watcher_engine, confirmations=1)
    credit_before = await _credit_nano_usd(chart_accounts, reverted_sender.address)
    snapshot = await chain.rpc("evm_snapshot")
    reverted_hash, block = await chain.transfer(
        reverted_sender, chain.tokens.usdc.address, chain.wallet.address, 111
    )
    assert (await watcher.poll_once()).booked == 0  # block `block` has no confirmation yet
    assert await chain.rpc("evm_revert", [snapshot]) is True
    surviving_hash, surviving_block = await chain.transfer(
        surviving_sender, chain.tokens.usdc.address, chain.wallet.address, 222
    )
    assert surviving_block == block
    assert surviving_hash != reverted_hash
    await chain.rpc("evm_mine")
    report = await watcher.poll_once()
    assert (report.booked, report.cursors_rewound) == (1, 0)
    assert (await watcher.poll_once()).booked == 0
    assert await _deposit_count(chart_accounts, surviving_hash) == 1
    assert await _deposit_count(chart_accounts, reverted_hash) == 0
    assert await _credit_nano_usd(chart_accounts, reverted_sender.address) == credit_before


async def test_reorg_of_a_scanned_block_with_zero_confirmations_is_noticed_and_stays_idempotent(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain, reverted_sender, surviving_sender = (
        private_chain,
        private_chain.accounts[1],
        private_chain.accounts[3],
    )
    watcher = await _watcher(chain, chart_accounts, watcher_engine, confirmations=0)
    snapshot = await chain.rpc("evm_snapshot")
    reverted_hash, _ = await chain.transfer(
        reverted_sender, chain.tokens.usdt.address, chain.wallet.address, 333
    )
    assert (await watcher.poll_once()).booked == 1  # booked from the head block, which is then dropped
    assert await chain.rpc("evm_revert", [snapshot]) is True
    surviving_hash, _ = await chain.transfer(
        surviving_sender, chain.tokens.usdt.address, chain.wallet.address, 444
    )
    report = await watcher.poll_once()
    assert (report.booked, report.cursors_rewound) == (1, 2)  # one cursor per token
    for _ in range(2):
        assert await watcher.poll_once() == PollReport(blocks_scanned=0)
    assert await _deposit_count(chart_accounts, surviving_hash) == 1
    # The dropped block's deposit is not reversed by the watcher (reconciliation reports it), nor repeated.
    assert await _deposit_count(chart_accounts, reverted_hash) == 1


async def test_x402_style_booking_of_the_same_transfer_is_not_repeated(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain, sender = private_chain, private_chain.accounts[2]
    watcher = await _watcher(chain, chart_accounts, watcher_engine)
    tx_hash, _ = await chain.transfer(sender, chain.tokens.usdc.address, chain.wallet.address, 9_000)
    cash = chart.cash(NETWORK, chain.tokens.usdc.address, chain.wallet.address)
    credit = chart.credit_wallet(sender.address)
    await chart_accounts.ensure([cash, credit])
    await chart_accounts.ledger.post(
        idempotency_key="x402:elsewhere",
        code="x402_deposit",
        external_ref=transfer_external_ref(NETWORK, tx_hash, 0),
        postings=[Posting(account=cash, amount=9_000_000), Posting(account=credit, amount=-9_000_000)],
    )
    report = await watcher.poll_once()
    assert (report.booked, report.already_booked) == (0, 1)
    assert await _credit_nano_usd(chart_accounts, sender.address) == 9_000_000


async def test_mints_and_zero_value_transfers_are_not_deposits(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain = private_chain
    watcher = await _watcher(chain, chart_accounts, watcher_engine)
    await mint(
        chain.w3, chain.wallet, token=chain.tokens.usdc.address, to=chain.wallet.address, amount_atomic=5
    )
    await chain.transfer(chain.accounts[1], chain.tokens.usdc.address, chain.wallet.address, 0)
    report = await watcher.poll_once()
    assert (report.booked, report.skipped_other) == (0, 2)
    assert await chart_accounts.ledger.transactions() == []


async def test_batches_are_bounded_per_poll(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain = private_chain
    watcher = await _watcher(
        chain, chart_accounts, watcher_engine, blocks_per_batch_max=2, batches_per_poll_max=1
    )
    for _ in range(5):
        await chain.transfer(chain.accounts[1], chain.tokens.usdc.address, chain.wallet.address, 10)
    reports = [await watcher.poll_once() for _ in range(4)]
    # Summed over both tokens: each token scans at most one batch of two blocks per poll.
    assert [r.blocks_scanned for r in reports] == [4, 4, 2, 0]
    assert sum(r.booked for r in reports) == 5


async def test_transfer_from_a_wallet_registered_to_an_org_credits_the_org(
    private_chain: PrivateChain, chart_accounts: ChartAccounts, watcher_engine: AsyncEngine
) -> None:
    chain, sender, other = private_chain, private_chain.accounts[1], private_chain.accounts[2]
    orgs = Organizations(watcher_engine)
    org = await orgs.create_org(name="Deposits", owner_wallet=sender.address)
    await orgs.register_deposit_wallet(org.id, wallet=sender.address)
    settings = WatcherSettings(
        network=NETWORK,
        settlement_wallet=chain.wallet.address,
        tokens=tuple(WatchedToken(address=t.address, decimals=t.decimals) for t in chain.tokens.all()),
        confirmations=0,
        start_block=await chain.w3.eth.block_number + 1,
    )
    watcher = ChainWatcher(
        chain.w3,
        settings=settings,
        accounts=chart_accounts,
        engine=watcher_engine,
        credit_account_for=orgs.deposit_credit_account,
    )
    await chain.transfer(sender, chain.tokens.usdc.address, chain.wallet.address, 3_000_000)
    await chain.transfer(other, chain.tokens.usdc.address, chain.wallet.address, 1_000_000)
    assert (await watcher.poll_once()).booked == 2
    assert (await chart_accounts.ledger.balance(org.credit_account)).posted == 3_000_000 * NANO_USD_PER_ATOMIC
    assert await _credit_nano_usd(chart_accounts, sender.address) == 0
    assert await _credit_nano_usd(chart_accounts, other.address) == 1_000_000 * NANO_USD_PER_ATOMIC
