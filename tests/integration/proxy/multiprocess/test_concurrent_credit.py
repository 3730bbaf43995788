"""Several MegaRouter processes on one PostgreSQL can never spend one wallet's credit twice.

Goal (issue 3): two or more server processes share one database; one wallet with a small credit and one
API key sends 500 concurrent keyed chat requests split across the processes. Each request holds its quote
on the credit (row locks in a fixed order), most get 402 insufficient_credit; the sum of captures never
exceeds the deposits, the credit never goes below zero, every hold is resolved, `ledger check` is clean,
and `ledger reconcile` ties the ledger to the chain with no breaks.

Method: real OS processes (`python -m proxy serve`, tests/e2e/server_process.py) on a fresh PostgreSQL
database and the simulated providers of the session, settling on a private Anvil of this test into a new
settlement wallet (funded with ETH for gas only). The session chain's settlement wallet receives every
other test's payments, so its balance could never tie out against this test's ledger; here the wallet's
whole on-chain history is this test's. The credit is funded by ONE x402 top-up through the first process
before any other process starts: every process's Settler signs from the same settlement key with its own
nonce counter, so two processes settling at once would race on transaction nonces. Keyed requests never
touch the chain, so reconciliation must find exactly that one settlement, booked once, and the wallet's
token balance equal to its cash account.
PostgreSQL only: skipped visibly without it, failed under CI=true (tests/fixtures/db.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.types import Wei

from ledger import HoldState, Ledger, chart, check_ledger, create_ledger_engine, unix_ms_now
from proxy.chain.reconcile import ReconcileScope, reconcile_settlement_wallet
from proxy.chain.watcher import WatchedToken
from proxy.cli.reconcile import EXIT_CLEAN, add_reconcile_command, run_reconcile_command
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from tests.e2e.accounts.helpers import sign_text, top_up_credit
from tests.e2e.server_process import ServerProcess, run_server_process
from tests.fixtures.app import router_settings
from tests.fixtures.chain import private_devnet
from tests.fixtures.db import PgDatabases

pytestmark = [pytest.mark.postgres, pytest.mark.anvil, pytest.mark.slow]

SERVER_PROCESSES = 2
REQUESTS = 500
# About 45 quotes of the request below fit in 0.0005 USD; captures are below quotes, so some more succeed.
TOPUP_USD = "0.0005"
TOPUP_NANO_USD = 500_000
PAYER_FUNDS_ATOMIC = 10 * 10**6
# ETH for the settlement transaction's gas (the top-up is the only transaction the wallet sends).
SETTLEMENT_WALLET_GAS_WEI = 10**18
LOAD_TIMEOUT_S = 40.0
HTTP_TIMEOUT_S = 30.0
RECEIPT_TIMEOUT_S = 20.0
CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Count to three."}],
    "max_tokens": 16,
}


@dataclass(frozen=True)
class PrivateChain:
    """This test's own Anvil, tokens and settlement wallet: nobody else moves tokens on it."""

    node: AnvilNode
    w3: AsyncWeb3[Any]
    tokens: DevnetTokens
    settlement_wallet: LocalAccount

    @property
    def network(self) -> str:
        return f"eip155:{self.node.chain_id}"


@dataclass(frozen=True)
class LoadOutcome:
    """What the load phase left, for the ledger checks and the reconciliation."""

    database_url: str
    wallet: str
    statuses: Counter[int]
    charged_nano_usd: int
    first_block: int


@contextlib.asynccontextmanager
async def _private_chain(
    anvil_accounts: list[LocalAccount], payer: LocalAccount
) -> AsyncIterator[PrivateChain]:
    """An Anvil of this test with both tokens, funds for `payer`, and a new settlement wallet with gas."""
    deployer = anvil_accounts[0]
    async with private_devnet(deployer, recipients=[payer], amount_atomic=PAYER_FUNDS_ATOMIC) as (
        node,
        w3,
        tokens,
    ):
        wallet: LocalAccount = Account.create()
        tx_hash = await w3.eth.send_transaction(
            {"from": deployer.address, "to": wallet.address, "value": Wei(SETTLEMENT_WALLET_GAS_WEI)}
        )
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        assert receipt["status"] == 1
        yield PrivateChain(node=node, w3=w3, tokens=tokens, settlement_wallet=wallet)


async def _obtain_key(session: aiohttp.ClientSession, server: ServerProcess, payer: LocalAccount) -> str:
    async with session.post(
        f"{server.base_url}/v1/auth/challenge", json={"address": payer.address}
    ) as issued:
        assert issued.status == 200, await issued.text()
        message = (await issued.json())["message"]
    body = {"address": payer.address, "message": message, "signature": sign_text(payer, message)}
    async with session.post(f"{server.base_url}/v1/keys", json=body) as created:
        assert created.status == 201, await created.text()
        key: str = (await created.json())["key"]
    return key


async def _chat(session: aiohttp.ClientSession, base_url: str, key: str) -> tuple[int, int]:
    """(status, charged nano-USD) of one keyed request; 402s must say insufficient_credit."""
    headers = {"Authorization": f"Bearer {key}"}
    async with session.post(f"{base_url}/v1/chat/completions", json=CHAT_BODY, headers=headers) as response:
        document = await response.json()
        if response.status == 200:
            return 200, int(response.headers["X-MegaRouter-Cost-Nano-USD"])
        assert response.status == 402, document
        assert "insufficient_credit" in str(document), document
        return 402, 0


async def _load(servers: list[ServerProcess], key: str) -> tuple[Counter[int], int]:
    connector = aiohttp.TCPConnector(limit=REQUESTS)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with asyncio.timeout(LOAD_TIMEOUT_S):
            results = await asyncio.gather(
                *(_chat(session, servers[i % len(servers)].base_url, key) for i in range(REQUESTS))
            )
    return Counter(status for status, _ in results), sum(charged for _, charged in results)


async def _check_ledger_after(outcome: LoadOutcome) -> None:
    engine = create_ledger_engine(outcome.database_url)
    try:
        assert await check_ledger(engine) == []
        ledger = Ledger(engine)
        credit = await ledger.balance(chart.credit_wallet(outcome.wallet))
        deposits = [tx for tx in await ledger.transactions(limit=1_000) if tx.code == "x402_deposit"]
        assert len(deposits) == 1
        # Debits of the credit account are exactly the captures; its credits are the deposits.
        assert credit.credits_posted == TOPUP_NANO_USD
        assert credit.debits_posted == outcome.charged_nano_usd
        assert credit.debits_posted <= credit.credits_posted
        assert credit.posted >= 0
        assert (credit.pending, credit.available) == (0, credit.posted)
        assert await ledger.open_holds() == []
        captured = await ledger.holds(state=HoldState.CAPTURED, limit=1_000)
        assert len(captured) == outcome.statuses[200]
    finally:
        await engine.dispose()


def _reconcile_scope(chain: PrivateChain) -> ReconcileScope:
    # The test reads the chain after the top-up's receipt, so nothing is left unconfirmed: 0 confirmations.
    return ReconcileScope(
        network=chain.network,
        settlement_wallet=chain.settlement_wallet.address,
        tokens=tuple(WatchedToken(address=t.address, decimals=t.decimals) for t in chain.tokens.all()),
        confirmations=0,
    )


async def _reconcile_after_load(chain: PrivateChain, outcome: LoadOutcome) -> None:
    """`reconcile_settlement_wallet` from the first block after the chain's set-up to the head: no breaks,
    one movement (the top-up's settlement) and its gas matched to their bookings, balances equal to cash
    accounts."""
    engine = create_ledger_engine(outcome.database_url)
    try:
        report = await reconcile_settlement_wallet(
            chain.w3,
            Ledger(engine),
            _reconcile_scope(chain),
            from_block=outcome.first_block,
            now_unix_ms=unix_ms_now(),
        )
    finally:
        await engine.dispose()
    assert report.clean, report.breaks
    assert report.balances_tied_out
    # The top-up's settlement, and the gas of its transaction.
    assert (report.movements_count, report.matched_count, report.pending) == (1 + 1, 1 + 1, ())
    assert (report.gas.transactions, report.gas.chain_gas_wei > 0) == (1, True)
    assert (report.receipts.looked_up, report.receipts.reverted, report.receipts.not_found) == (1, (), ())
    assert all(b.chain_nano_usd == b.ledger_nano_usd for b in report.balances)
    assert sum(b.chain_nano_usd for b in report.balances) == TOPUP_NANO_USD


async def _reconcile_cli_after_load(chain: PrivateChain, outcome: LoadOutcome, project_root: Path) -> None:
    """`megarouter ledger reconcile` over the same range, configured as an operator would: exits clean."""
    state = project_root / ".megarouter"
    state.mkdir()
    record = {
        "chain_id": chain.node.chain_id,
        "usdc": chain.tokens.usdc.address,
        "usdt": chain.tokens.usdt.address,
        "settlement_wallet": chain.settlement_wallet.address,
        "chain_watch_confirmations": 0,
    }
    (state / "devnet.json").write_text(json.dumps(record))
    parser = argparse.ArgumentParser()
    add_reconcile_command(parser.add_subparsers(required=True))
    argv = ["--database-url", outcome.database_url, "--rpc-url", chain.node.rpc_url, "--json"]
    args = parser.parse_args(["reconcile", *argv, "--from-block", str(outcome.first_block)])
    out, err = io.StringIO(), io.StringIO()
    code = await run_reconcile_command(args, environ={}, project_root=project_root, out=out, err=err)
    assert code == EXIT_CLEAN, out.getvalue() + err.getvalue()
    document = json.loads(out.getvalue())
    assert (document["clean"], document["from_block"]) == (True, outcome.first_block)


async def _run_load(
    tmp_path: Path, chain: PrivateChain, simulator: Simulators, database_url: str, payer: LocalAccount
) -> LoadOutcome:
    """Servers up one by one (the top-up and the key through the first), then the load across all."""
    settings = router_settings(
        anvil=chain.node,
        tokens=chain.tokens,
        settlement_key="0x" + chain.settlement_wallet.key.hex().removeprefix("0x"),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
        db_pool_size_max=20,
    )
    first_block = await chain.w3.eth.block_number + 1
    async with contextlib.AsyncExitStack() as stack:
        servers: list[ServerProcess] = []
        for index in range(SERVER_PROCESSES):
            config_dir = tmp_path / f"server{index}"
            config_dir.mkdir()
            servers.append(await stack.enter_async_context(run_server_process(settings, config_dir)))
            if index == 0:
                # Fund through the first process only, before any other Settler exists.
                timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    await top_up_credit(
                        session,
                        servers[0].base_url,
                        payer,
                        amount_usd=TOPUP_USD,
                        credited_nano_usd=TOPUP_NANO_USD,
                    )
                    key = await _obtain_key(session, servers[0], payer)
        statuses, charged_nano_usd = await _load(servers, key)
    return LoadOutcome(
        database_url=database_url,
        wallet=payer.address,
        statuses=statuses,
        charged_nano_usd=charged_nano_usd,
        first_block=first_block,
    )


async def test_processes_sharing_postgres_never_overspend_one_credit(
    tmp_path: Path,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    pg_databases: PgDatabases | None,
) -> None:
    if pg_databases is None:
        pytest.skip("PostgreSQL not reachable: the multi-process test needs one shared PostgreSQL")
    database_url = await pg_databases.create()
    payer = anvil_accounts[8]
    async with _private_chain(anvil_accounts, payer) as chain:
        outcome = await _run_load(tmp_path, chain, simulator, database_url, payer)
        statuses = outcome.statuses
        assert sum(statuses.values()) == REQUESTS
        assert statuses[200] > 0, statuses
        assert statuses[402] > REQUESTS // 2, statuses
        print(
            f"multiprocess load: {dict(statuses)}, "
            f"charged {outcome.charged_nano_usd} of {TOPUP_NANO_USD} nano-USD"
        )
        await _check_ledger_after(outcome)
        await _reconcile_after_load(chain, outcome)
        project_root = tmp_path / "operator"
        project_root.mkdir()
        await _reconcile_cli_after_load(chain, outcome, project_root)
