"""`megarouter ledger reconcile`'s handler: tie the ledger to the chain for the settlement wallet.

What the command reads, its range and its exit codes are documented (and shown by `--help`) in
proxy/cli/reconcile_args.py, which declares its arguments without loading web3, pydantic or SQLAlchemy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import sqlalchemy.exc
from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import Ledger, create_ledger_engine, migrate, unix_ms_now
from ledger.cli import blank_if_none, text_table
from ledger.engine import missing_sqlite_file
from proxy.app.config import ConfigError, load_settings
from proxy.chain.reconcile import ReconcileReport, ReconcileScope, reconcile_settlement_wallet
from proxy.chain.transfers import bounded_rpc
from proxy.chain.watcher import WatchedToken
from proxy.cli.reconcile_args import add_reconcile_command
from proxy.db.migrate import migrate_proxy
from proxy.settings import Settings
from x402.errors import ChainUnavailable

__all__ = [
    "ANVIL_ACCOUNT_0",
    "DEFAULT_RPC_URL",
    "EXIT_BREAKS",
    "EXIT_CLEAN",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "DemoChainRecord",
    "ReconcileTarget",
    "add_reconcile_command",
    "run_reconcile_command",
]

EXIT_CLEAN = 0
EXIT_BREAKS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
# The demo settles with Anvil's first mnemonic account (its address is public test data).
ANVIL_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
STATE_DIR = ".megarouter"
DEMO_TOKEN_DECIMALS = 6
RPC_TIMEOUT_S = 10.0


class DemoChainRecord(BaseModel):
    """The fields of `.megarouter/devnet.json` reconciliation reads; others are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    chain_id: int = Field(gt=0)
    usdc: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    usdt: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    rpc_url: str = Field(default=DEFAULT_RPC_URL, pattern=r"^https?://")
    settlement_wallet: str = Field(default=ANVIL_ACCOUNT_0, pattern=r"^0x[0-9a-fA-F]{40}$")
    chain_watch_confirmations: int = Field(
        default=Settings.model_fields["chain_watch_confirmations"].default, ge=0
    )


class ReconcileTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str
    rpc_url: str
    scope: ReconcileScope


class UsageError(Exception):
    """The command line or the files it names cannot be used; nothing was run."""


async def run_reconcile_command(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] = os.environ,
    project_root: Path = Path(),
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Runs one reconciliation for parsed arguments and returns the exit code."""
    stream, errors = out or sys.stdout, err or sys.stderr
    try:
        _check_range(args.from_block, args.to_block)
        target = _target(args, environ=environ, project_root=project_root)
    except UsageError as error:
        print(f"reconcile: {error}", file=errors)
        return EXIT_USAGE
    w3 = AsyncWeb3(
        AsyncHTTPProvider(
            target.rpc_url, request_kwargs={"timeout": aiohttp.ClientTimeout(total=RPC_TIMEOUT_S)}
        )
    )
    engine = create_ledger_engine(target.database_url)
    try:
        head = int(await bounded_rpc(w3.eth.block_number, "eth_blockNumber", timeout_s=RPC_TIMEOUT_S))
        if args.to_block is not None and args.to_block > head:
            print(f"reconcile: --to-block {args.to_block} is beyond the chain head {head}", file=errors)
            return EXIT_USAGE
        await migrate(engine)
        await migrate_proxy(engine)
        report = await reconcile_settlement_wallet(
            w3,
            Ledger(engine),
            target.scope,
            from_block=args.from_block,
            to_block=args.to_block,
            now_unix_ms=unix_ms_now(),
        )
    except ChainUnavailable as error:
        print(f"reconcile: chain unavailable at {target.rpc_url}: {error}", file=errors)
        return EXIT_UNAVAILABLE
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as error:
        print(f"reconcile: database unavailable: {type(error).__name__}: {error}", file=errors)
        return EXIT_UNAVAILABLE
    finally:
        await engine.dispose()
        await w3.provider.disconnect()
    if args.json:
        print(json.dumps(_report_json(report), indent=2, sort_keys=True), file=stream)
    else:
        print(_report_text(report), file=stream)
    return EXIT_CLEAN if report.clean else EXIT_BREAKS


def _check_range(from_block: int | None, to_block: int | None) -> None:
    if from_block is not None and from_block < 0:
        raise UsageError("--from-block must be 0 or more")
    if to_block is not None and to_block < 0:
        raise UsageError("--to-block must be 0 or more")
    if from_block is not None and to_block is not None and from_block > to_block:
        raise UsageError(f"--from-block {from_block} is after --to-block {to_block}")


def _target(args: argparse.Namespace, *, environ: Mapping[str, str], project_root: Path) -> ReconcileTarget:
    target = _config_target(args.config, environ) if args.config else _demo_target(project_root)
    updates: dict[str, str] = {}
    if args.database_url:
        updates["database_url"] = args.database_url
    if args.rpc_url:
        updates["rpc_url"] = args.rpc_url
    target = target.model_copy(update=updates)
    try:
        missing = missing_sqlite_file(target.database_url)
    except sqlalchemy.exc.ArgumentError as error:
        raise UsageError(f"not a database URL: {target.database_url!r}") from error
    if missing is not None:
        raise UsageError(
            f"no database at {missing} (run the demo or the proxy first, or pass --database-url)"
        )
    return target


def _config_target(path: Path, environ: Mapping[str, str]) -> ReconcileTarget:
    try:
        settings = load_settings(path, environ)
    except ConfigError as error:
        raise UsageError(str(error)) from error
    wallet = Account.from_key(settings.settlement_private_key.get_secret_value()).address
    scope = ReconcileScope(
        network=settings.network,
        settlement_wallet=wallet,
        tokens=tuple(WatchedToken(address=a.address, decimals=a.decimals) for a in settings.assets),
        confirmations=settings.chain_watch_confirmations,
        rpc_timeout_s=settings.rpc_timeout_s,
    )
    return ReconcileTarget(database_url=settings.database_url, rpc_url=settings.chain_rpc_url, scope=scope)


def _demo_target(project_root: Path) -> ReconcileTarget:
    record_path = project_root / STATE_DIR / "devnet.json"
    try:
        record = DemoChainRecord.model_validate_json(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise UsageError(f"no {record_path} (run ./scripts/run first, or pass --config)") from error
    except ValidationError as error:
        raise UsageError(f"{record_path} is not a devnet record: {error.errors()[0]['msg']}") from error
    scope = ReconcileScope(
        network=f"eip155:{record.chain_id}",
        settlement_wallet=record.settlement_wallet,
        tokens=(
            WatchedToken(address=record.usdc, decimals=DEMO_TOKEN_DECIMALS),
            WatchedToken(address=record.usdt, decimals=DEMO_TOKEN_DECIMALS),
        ),
        confirmations=record.chain_watch_confirmations,
    )
    database = project_root / STATE_DIR / "megarouter.db"
    return ReconcileTarget(
        database_url=f"sqlite+aiosqlite:///{database}", rpc_url=record.rpc_url, scope=scope
    )


def _report_json(report: ReconcileReport) -> dict[str, Any]:
    document = report.model_dump(mode="json")
    document["clean"] = report.clean
    document["breaks_by_kind"] = dict(Counter(b.kind.value for b in report.breaks))
    return document


def _report_text(report: ReconcileReport) -> str:
    receipts, gas = report.receipts, report.gas
    lines = [
        f"reconcile run {report.run.id}: {report.network} wallet {report.settlement_wallet}",
        f"blocks {report.from_block}..{report.to_block} (head {report.head_block}); "
        f"movements {report.movements_count}, matched {report.matched_count}, "
        f"pending (unconfirmed, not yet booked) {len(report.pending)}, "
        f"bookings outside the range {report.out_of_range_bookings}",
        f"receipts looked up {receipts.looked_up}: reverted {len(receipts.reverted)}, "
        f"not found {len(receipts.not_found)}",
        f"gas: {gas.transactions} transactions sent by the wallet ({gas.reverted} reverted, {gas.pending} "
        f"pending), {gas.chain_gas_wei} wei spent on chain, {gas.booked_gas_wei} wei booked",
        "",
    ]
    if report.balances_tied_out:
        rows: list[list[Any]] = [
            [
                b.account,
                b.chain_nano_usd,
                b.pending_nano_usd,
                b.ledger_nano_usd,
                b.chain_nano_usd - b.pending_nano_usd - b.ledger_nano_usd,
            ]
            for b in report.balances
        ]
        headers = ["cash account", "chain", "pending", "ledger", "difference"]
        lines.append(text_table(headers, rows, mark_empty=False))
    else:
        lines.append("balances not tied out: the range ends before the chain head")
    lines.append("")
    if report.clean:
        lines.append("OK: no breaks")
        return "\n".join(lines)
    counts = Counter(b.kind.value for b in report.breaks)
    lines.append(
        f"BREAKS: {len(report.breaks)} (" + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")"
    )
    break_rows: list[list[Any]] = [
        [
            b.kind.value,
            b.external_ref or "",
            b.account or "",
            blank_if_none(b.ledger_amount_nano_usd),
            blank_if_none(b.external_amount_nano_usd),
            b.detail,
        ]
        for b in report.breaks
    ]
    lines.append(
        text_table(
            ["kind", "external_ref", "account", "ledger_nano_usd", "chain_nano_usd", "detail"],
            break_rows,
            mark_empty=False,
        )
    )
    return "\n".join(lines)
