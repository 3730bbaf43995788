"""`megarouter demo`: the whole of MegaRouter on one machine, in the foreground.

It starts Anvil (its chain kept in the state dir, so a second run continues the first, even after a
crash: see proxy/devnet/anvil.py), deploys the test tokens and funds accounts 1-9 on first start, starts
the simulated providers and MegaRouter on 127.0.0.1, prints what an agent needs, and stops everything on
Ctrl-C (SIGINT) or SIGTERM. When the chain state cannot be continued (unreadable, or behind the
database), the chain, its record and the database are set aside together and the demo starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.api.app_keys import DASHBOARD_SESSIONS
from proxy.api.dashboard.sessions import DashboardPrincipal
from proxy.app.serve import app_runner
from proxy.catalog import load_catalog
from proxy.devnet.anvil import ANVIL_MNEMONIC, AnvilNode, free_tcp_port, run_anvil, state_file_problem
from proxy.devnet.permit2 import approve_permit2, install_permit2_contracts, permit2_allowance_atomic
from proxy.devnet.providers import demo_providers
from proxy.devnet.simulator import start_simulators
from proxy.devnet.tokens import DevnetTokens, deploy_test_tokens, mint_many
from proxy.settings import AssetSettings, DashboardSettings, Settings

__all__ = ["DEMO_ANVIL_PORT", "run_demo", "set_aside_unusable_chain"]

DEMO_ANVIL_PORT = 8545
DEMO_FUNDED_ACCOUNTS = range(1, 10)
DEMO_MINT_ATOMIC = 1_000 * 10**6
DEMO_DEFAULT_MODEL = "openai/gpt-4o-mini"
# Anvil mines a block per transaction, so one confirmation is enough for the demo's chain watcher.
DEMO_CHAIN_WATCH_CONFIRMATIONS = 1
# The dashboard link the demo prints opens a session once, within this long.
DEMO_DASHBOARD_LINK_TTL_S = 3600


class DevnetRecord(BaseModel):
    """What the demo deployed and where it runs, kept next to Anvil's state: a second run reuses it, and
    operator tools run from the project root (`megarouter ledger reconcile`) read it to find the chain."""

    chain_id: int
    network: str
    rpc_url: str
    settlement_wallet: str
    chain_watch_confirmations: int = DEMO_CHAIN_WATCH_CONFIRMATIONS
    usdc: str
    usdt: str


def anvil_account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


async def _ensure_permit2(w3: AsyncWeb3[Any], tokens: list[str]) -> None:
    """Permit2 and the x402 upto proxy at their canonical addresses, and the funded accounts approving
    Permit2 (once: a chain from an older demo state gets the approvals on its next start)."""
    await install_permit2_contracts(w3)
    funded = [anvil_account(index) for index in DEMO_FUNDED_ACCOUNTS]
    checksummed = [AsyncWeb3.to_checksum_address(token) for token in tokens]
    if await permit2_allowance_atomic(w3, checksummed[0], funded[0].address) == 0:
        await approve_permit2(w3, funded, tokens=checksummed)


async def _ensure_tokens(node: AnvilNode, state_dir: Path) -> DevnetRecord:
    record_path = state_dir / "devnet.json"
    w3 = AsyncWeb3(AsyncHTTPProvider(node.rpc_url))
    try:
        if record_path.exists():
            # Anvil may listen on another port this time; older records lack the newer fields.
            known = json.loads(record_path.read_text()) | {
                "rpc_url": node.rpc_url,
                "network": f"eip155:{node.chain_id}",
                "settlement_wallet": anvil_account(0).address,
            }
            record = DevnetRecord.model_validate(known)
            if await w3.eth.get_code(AsyncWeb3.to_checksum_address(record.usdc)):
                await _ensure_permit2(w3, [record.usdc, record.usdt])
                record_path.write_text(record.model_dump_json(indent=2))
                return record
        deployer = anvil_account(0)
        tokens: DevnetTokens = await deploy_test_tokens(w3, deployer)
        await mint_many(
            w3,
            deployer,
            tokens=[token.address for token in tokens.all()],
            recipients=[anvil_account(index).address for index in DEMO_FUNDED_ACCOUNTS],
            amount_atomic=DEMO_MINT_ATOMIC,
        )
        await _ensure_permit2(w3, [tokens.usdc.address, tokens.usdt.address])
        record = DevnetRecord(
            chain_id=node.chain_id,
            network=f"eip155:{node.chain_id}",
            rpc_url=node.rpc_url,
            settlement_wallet=deployer.address,
            usdc=tokens.usdc.address,
            usdt=tokens.usdt.address,
        )
        record_path.write_text(record.model_dump_json(indent=2))
        return record
    finally:
        await w3.provider.disconnect()


DEMO_DATABASE_NAME = "megarouter.db"
# What describes one chain: Anvil's state, the record of what was deployed on it, and the database whose
# ledger books its settlements. They are kept, and set aside, together.
DEMO_CHAIN_FILES = ("anvil-state.json", "devnet.json", DEMO_DATABASE_NAME)
SQLITE_SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")


def _set_aside(state_dir: Path, *, reason: str) -> None:
    """Moves the chain's files into `set-aside-<unix s>/` and says so in one line: the next start is a new
    chain with a new database, never a ledger describing a chain that no longer exists."""
    names = [
        name
        for base in DEMO_CHAIN_FILES
        for name in (base, *(base + suffix for suffix in SQLITE_SIDE_FILE_SUFFIXES))
        if (state_dir / name).exists()
    ]
    if not names:
        return
    aside = state_dir / f"set-aside-{int(time.time())}"
    aside.mkdir(exist_ok=True)
    for name in names:
        shutil.move(state_dir / name, aside / name)
    print(f"note: {reason}; starting a new chain and database, the old ones moved to {aside}", flush=True)


def _database_block_max(database: Path) -> int | None:
    """The newest block the demo database has booked or scanned, or None when it knows of none."""
    if not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        try:
            settled = connection.execute("SELECT MAX(block_number) FROM x402_settlements").fetchone()[0]
            scanned = connection.execute("SELECT MAX(next_block) - 1 FROM chain_watch_cursors").fetchone()[0]
        except sqlite3.OperationalError:
            return None  # Not migrated yet: it describes no chain.
    known = [block for block in (settled, scanned) if block is not None]
    return max(known) if known else None


def _chain_files_problem(state_dir: Path) -> str | None:
    """Why the chain state and the database cannot be continued together (None when they can)."""
    anvil_state = state_dir / "anvil-state.json"
    database = state_dir / DEMO_DATABASE_NAME
    if not anvil_state.exists():
        return None if not database.exists() else "the chain state is missing"
    problem = state_file_problem(anvil_state)
    if problem is not None:
        return f"the chain state {anvil_state} is unreadable: {problem}"
    chain_block = int(json.loads(anvil_state.read_bytes())["block"]["number"], 16)
    database_block = _database_block_max(database)
    if database_block is not None and database_block > chain_block:
        return f"the chain state ends at block {chain_block} but the database has seen block {database_block}"
    return None


def set_aside_unusable_chain(state_dir: Path) -> str | None:
    """Sets the chain's files aside when they cannot be continued together; returns why, or None."""
    problem = _chain_files_problem(state_dir)
    if problem is not None:
        _set_aside(state_dir, reason=problem)
    return problem


def _banner(
    *,
    api: str,
    node: AnvilNode,
    record: DevnetRecord,
    agent: LocalAccount,
    network: str,
    real_providers: list[str],
    dashboard_link: str,
    admin_token: str,
) -> str:
    example = (
        f".venv/bin/megarouter pay --api {api} --private-key {'0x' + agent.key.hex().removeprefix('0x')} \\\n"
        f'    --model {DEMO_DEFAULT_MODEL} "Say hello in five words"'
    )
    curl = (
        f"curl -s -i {api}/v1/chat/completions -H 'content-type: application/json' "
        f"-d '{json.dumps({'model': DEMO_DEFAULT_MODEL, 'messages': [{'role': 'user', 'content': 'hi'}]})}'"
    )
    return "\n".join(
        [
            "MegaRouter demo is running. Ctrl-C stops everything.",
            f"  API base URL     {api}/v1",
            f"  chain RPC URL    {node.rpc_url}",
            f"  network (CAIP-2) {network}",
            f"  USDC (test)      {record.usdc}",
            f"  USDT (test)      {record.usdt}",
            f"  agent address    {agent.address}  (1,000 USDC + 1,000 USDT on first start)",
            f"  agent key        {'0x' + agent.key.hex().removeprefix('0x')}",
            "  providers        "
            + (
                f"real: {', '.join(real_providers)}; the others simulated"
                if real_providers
                else "all simulated (set e.g. OPENAI_API_KEY to serve a provider for real)"
            ),
            "",
            "See the 402 offer:",
            f"  {curl}",
            "Pay for a completion as an x402 agent (copy-paste):",
            f"  {example}",
            "Ledger: .venv/bin/megarouter ledger balances    .venv/bin/megarouter ledger check",
            "",
            "Dashboard, signed in as the operator (the link works once):",
            f"  {dashboard_link}",
            f"  admin token (this run) {admin_token}",
        ]
    )


async def run_demo(*, state_dir: Path, port: int, environ: Mapping[str, str]) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything starts.
    anvil_state = state_dir / "anvil-state.json"
    set_aside_unusable_chain(state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    anvil_port = DEMO_ANVIL_PORT
    with contextlib.closing(__import__("socket").socket()) as probe:
        if probe.connect_ex(("127.0.0.1", anvil_port)) == 0:
            anvil_port = free_tcp_port()
    async with (
        run_anvil(port=anvil_port, state_path=anvil_state, log_path=state_dir / "anvil.log") as node,
        start_simulators() as simulators,
    ):
        record = await _ensure_tokens(node, state_dir)
        providers, real_providers = demo_providers(
            load_catalog(), simulator_base_url=simulators.base_url, environ=environ
        )
        settings = Settings(
            port=port,
            database_url=f"sqlite+aiosqlite:///{state_dir / DEMO_DATABASE_NAME}",
            chain_rpc_url=node.rpc_url,
            chain_id=node.chain_id,
            settlement_private_key=anvil_account(0).key.hex(),
            assets=(
                AssetSettings(symbol="USDC", address=record.usdc, eip712_name="USD Coin", eip712_version="2"),
                AssetSettings(symbol="USDT", address=record.usdt, eip712_name="USDT0", eip712_version="1"),
            ),
            providers=providers,
            default_model=DEMO_DEFAULT_MODEL,
            log_format="console",
            # A fresh admin token each run: the dashboard's operator sign-in, and its analytics of everyone.
            admin_token=secrets.token_urlsafe(32),
            dashboard=DashboardSettings(login_token_ttl_s=DEMO_DASHBOARD_LINK_TTL_S),
        )
        runner = await app_runner(settings)
        try:
            site = web.TCPSite(runner, settings.host, settings.port)
            await site.start()
            api = f"http://{settings.host}:{settings.port}"
            login_token = runner.app[DASHBOARD_SESSIONS].issue_login_token(
                DashboardPrincipal(kind="operator")
            )
            assert settings.admin_token is not None
            print(
                _banner(
                    api=api,
                    node=node,
                    record=record,
                    agent=anvil_account(1),
                    network=settings.network,
                    real_providers=real_providers,
                    dashboard_link=f"{api}/dashboard/login?token={login_token}",
                    admin_token=settings.admin_token.get_secret_value(),
                ),
                flush=True,
            )
            await stop.wait()
            print("\nstopping…", flush=True)
        finally:
            await runner.cleanup()
    return 0
