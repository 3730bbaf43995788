#!/usr/bin/env python3
"""How long `ledger reconcile` takes per 10,000 token transfers into the settlement wallet.

Self-contained: starts its own Anvil (large block gas limit), deploys and mints the test tokens, then turns
automine off and sends N plain ERC-20 transfers to the settlement wallet from accounts 1..9 (Anvil's
unlocked accounts, `eth_sendTransaction` with explicit nonces, in JSON-RPC batches, no receipt awaited),
and mines them in a few blocks. The real chain watcher books them into a fresh ledger (SQLite in a
temporary directory, or --database-url for an existing empty database). Then it times
`reconcile_settlement_wallet` over the whole history (the figure), and once more resuming after that clean
run (nothing new: the cost of a no-op run). Everything is bounded by --timeout-s.

Usage: .venv/bin/python scripts/bench/reconcile_speed.py [--transfers N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import Ledger, create_ledger_engine, migrate, unix_ms_now
from proxy.chain.reconcile import ReconcileScope, reconcile_settlement_wallet
from proxy.chain.watcher import ChainWatcher, WatchedToken, WatcherSettings
from proxy.chart_accounts import ChartAccounts
from proxy.db.migrate import migrate_proxy
from proxy.devnet.anvil import ANVIL_MNEMONIC, run_anvil
from proxy.devnet.tokens import deploy_test_tokens, mint_many

NETWORK = "eip155:31337"
SENDERS = range(1, 10)
RPC_BATCH_SIZE = 500
MINE_ROUNDS_MAX = 200
BLOCK_GAS_LIMIT = 300_000_000
TRANSFER_GAS = 80_000
_TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")


def _account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


async def _rpc_batch(session: aiohttp.ClientSession, url: str, calls: list[tuple[str, list[Any]]]) -> None:
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    async with session.post(url, json=body) as response:
        results = await response.json()
    failed = [r for r in results if "error" in r]
    assert not failed, failed[:3]


async def _rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as r:
        document = await r.json()
    assert "error" not in document, document
    return document["result"]


async def _send_transfers(rpc_url: str, *, token: str, wallet: str, count: int) -> float:
    """Queues `count` transfers with automine off, then mines until the pool is empty; returns seconds."""
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _rpc(session, rpc_url, "evm_setAutomine", [False])
        senders = [_account(i).address for i in SENDERS]
        nonces = [
            int(await _rpc(session, rpc_url, "eth_getTransactionCount", [s, "pending"]), 16) for s in senders
        ]
        calls: list[tuple[str, list[Any]]] = []
        for i in range(count):
            which = i % len(senders)
            amount_atomic = 1 + i % 97
            data = _TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [wallet, amount_atomic])
            tx = {
                "from": senders[which],
                "to": token,
                "data": "0x" + data.hex(),
                "gas": hex(TRANSFER_GAS),
                "nonce": hex(nonces[which]),
                "maxFeePerGas": hex(10**11),
                "maxPriorityFeePerGas": hex(10**9),
            }
            nonces[which] += 1
            calls.append(("eth_sendTransaction", [tx]))
        for start in range(0, len(calls), RPC_BATCH_SIZE):
            await _rpc_batch(session, rpc_url, calls[start : start + RPC_BATCH_SIZE])
        for _ in range(MINE_ROUNDS_MAX):
            status = await _rpc(session, rpc_url, "txpool_status", [])
            if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
                break
            await _rpc(session, rpc_url, "evm_mine", [])
        else:
            raise AssertionError(f"transfers still pending after {MINE_ROUNDS_MAX} blocks")
        await _rpc(session, rpc_url, "evm_setAutomine", [True])
    return time.perf_counter() - started


async def _bench(transfers: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = database_url or f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        async with run_anvil(extra_args=["--gas-limit", str(BLOCK_GAS_LIMIT)]) as node:
            w3 = AsyncWeb3(AsyncHTTPProvider(node.rpc_url))
            engine = create_ledger_engine(url)
            try:
                await migrate(engine)
                await migrate_proxy(engine)
                deployer, wallet = _account(0), Account.create()
                tokens = await deploy_test_tokens(w3, deployer)
                await mint_many(
                    w3,
                    deployer,
                    tokens=[tokens.usdc.address],
                    recipients=[_account(i).address for i in SENDERS],
                    amount_atomic=10**12,
                )
                start_block = await w3.eth.block_number + 1
                send_s = await _send_transfers(
                    node.rpc_url, token=tokens.usdc.address, wallet=wallet.address, count=transfers
                )
                blocks = await w3.eth.block_number - start_block + 1
                print(f"sent and mined {transfers:,} transfers in {send_s:.1f} s; booking...", flush=True)
                watched = (
                    WatchedToken(address=tokens.usdc.address),
                    WatchedToken(address=tokens.usdt.address),
                )
                watcher = ChainWatcher(
                    w3,
                    settings=WatcherSettings(
                        network=NETWORK,
                        settlement_wallet=wallet.address,
                        tokens=watched,
                        confirmations=0,
                        start_block=start_block,
                    ),
                    accounts=ChartAccounts(Ledger(engine)),
                    engine=engine,
                )
                booked_at = time.perf_counter()
                report = await watcher.poll_once()
                book_s = time.perf_counter() - booked_at
                assert report.booked == transfers, report
                print(f"booked in {book_s:.1f} s; reconciling...", flush=True)
                scope = ReconcileScope(network=NETWORK, settlement_wallet=wallet.address, tokens=watched)
                started = time.perf_counter()
                full = await reconcile_settlement_wallet(
                    w3, Ledger(engine), scope, from_block=0, now_unix_ms=unix_ms_now()
                )
                full_s = time.perf_counter() - started
                assert full.clean, full.breaks[:3]
                assert full.matched_count == transfers
                started = time.perf_counter()
                again = await reconcile_settlement_wallet(
                    w3, Ledger(engine), scope, now_unix_ms=unix_ms_now()
                )
                again_s = time.perf_counter() - started
                assert again.clean
            finally:
                await engine.dispose()
                await w3.provider.disconnect()
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"reconcile_speed: {transfers:,} transfers in {blocks} blocks, ledger on {database}")
    print(f"  send + mine transfers        {send_s:8.2f} s")
    print(f"  book via chain watcher       {book_s:8.2f} s  ({transfers / book_s:,.0f} bookings/s)")
    per_10k_s = full_s * 10_000 / transfers
    print(f"  reconcile (full history)     {full_s:8.2f} s  -> {per_10k_s:.2f} s per 10,000 transfers")
    print(f"  reconcile (resume, no new)   {again_s:8.2f} s")
    print(f"  matched {full.matched_count:,}, breaks {len(full.breaks)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transfers", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="an existing, empty database (default: SQLite)")
    parser.add_argument("--timeout-s", type=float, default=170.0)
    args = parser.parse_args(argv)
    # One info line per booking would dominate the booking phase; only warnings are printed.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if not 0 < args.transfers <= 100_000:
        parser.error("--transfers must be between 1 and 100,000")

    async def bounded() -> None:
        async with asyncio.timeout(args.timeout_s):
            await _bench(args.transfers, args.database_url)

    asyncio.run(bounded())
    return 0


if __name__ == "__main__":
    sys.exit(main())
