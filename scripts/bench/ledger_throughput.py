#!/usr/bin/env python3
"""Ledger hold+capture pairs per second: SQLite and PostgreSQL, one process and several, many accounts
and one hot account.

One pair is what a keyed request costs the ledger: `Ledger.hold` of a quote on a customer credit account
(must not go negative) towards `provider_payable:bench`, then `Ledger.capture` of a smaller real cost
(the rest is released). Each scenario runs `--seconds` of wall time after a common start instant; every
worker process opens its own engine (as a server process would) and runs `--tasks` concurrent asyncio
tasks, each doing pairs back to back. "many" spreads the pairs over `--accounts` credit accounts (little
lock contention); "hot" sends every pair to one account (every hold and capture locks that row, so pairs
serialise on it). Errors (e.g. lock timeouts) are counted, never retried. `ledger check` runs after each
database is done and must be clean.

SQLite is a file in a temporary directory (WAL, BEGIN IMMEDIATE: one writer at a time for the whole file).
PostgreSQL is a fresh database on --pg-dsn (default: the tests' 127.0.0.1:5432), dropped at the end;
skipped with a note when unreachable. Bounded: scenarios × seconds, plus set-up, stays under 2 minutes
with the defaults (8 scenarios × 5 s).

Usage: .venv/bin/python scripts/bench/ledger_throughput.py [--seconds S] [--processes N] [--tasks T]
       [--accounts A] [--pg-dsn postgresql://root@127.0.0.1:5432/test] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from ledger import (
    AccountFlags,
    AccountType,
    InsufficientFunds,
    Ledger,
    check_ledger,
    create_ledger_engine,
    migrate,
)

NANO_USD = "nano_usd"
PAYABLE_ACCOUNT = "provider_payable:bench"
EQUITY_ACCOUNT = "equity:external"
HOLD_NANO_USD = 20_000
CAPTURE_NANO_USD = 12_345
# Enough for every pair any scenario could do on one account: the hot account must never run dry.
FUNDING_NANO_USD = 10**15
START_DELAY_S = 1.5
WORKER_JOIN_TIMEOUT_S = 60.0
PG_CONNECT_TIMEOUT_S = 3.0
TOTAL_BUDGET_S = 120.0


@dataclass(frozen=True)
class Scenario:
    backend: str
    processes: int
    shape: str  # "many" | "hot"


@dataclass(frozen=True)
class WorkerResult:
    pairs: int
    errors: int
    insufficient: int
    cpu_s: float = 0.0  # the worker processes' own CPU time over the measured window (threads included)


def credit_account(index: int) -> str:
    return f"credit:wallet:0x{index:040x}"


async def prepare(url: str, accounts: int) -> None:
    """Schema and accounts, each credit account funded from equity:external."""
    engine = create_ledger_engine(url)
    try:
        await migrate(engine)
        ledger = Ledger(engine)
        await ledger.ensure_account(EQUITY_ACCOUNT, type=AccountType.EQUITY, unit=NANO_USD)
        await ledger.ensure_account(PAYABLE_ACCOUNT, type=AccountType.LIABILITY, unit=NANO_USD)
        for index in range(accounts):
            name = credit_account(index)
            await ledger.ensure_account(
                name, type=AccountType.LIABILITY, unit=NANO_USD, flags=AccountFlags.MUST_NOT_GO_NEGATIVE
            )
            await ledger.post(
                idempotency_key=f"bench:fund:{name}",
                code="bench_deposit",
                postings=[(EQUITY_ACCOUNT, FUNDING_NANO_USD), (name, -FUNDING_NANO_USD)],
            )
    finally:
        await engine.dispose()


async def _pairs(
    ledger: Ledger, *, tag: str, account_indexes: list[int], deadline: float, counts: list[int]
) -> None:
    """Hold+capture pairs until `deadline` (monotonic); counts = [pairs, errors, insufficient]."""
    i = 0
    while time.monotonic() < deadline:
        account = credit_account(account_indexes[i % len(account_indexes)])
        key = f"bench:{tag}:{i}"
        i += 1
        try:
            hold = await ledger.hold(
                idempotency_key=f"{key}:hold",
                code="bench_hold",
                debit_account=account,
                credit_account=PAYABLE_ACCOUNT,
                amount=HOLD_NANO_USD,
                timeout_s=300,
            )
            await ledger.capture(hold.id, CAPTURE_NANO_USD, idempotency_key=f"{key}:capture")
            counts[0] += 1
        except InsufficientFunds:
            counts[2] += 1
        except Exception as error:
            counts[1] += 1
            if counts[1] <= 3:
                print(f"  worker error: {type(error).__name__}: {str(error)[:160]}", file=sys.stderr)


async def _worker(
    url: str, *, worker: int, tasks: int, account_indexes: list[int], start_at: float, seconds: float
) -> WorkerResult:
    engine = create_ledger_engine(url, **({} if url.startswith("sqlite") else {"pool_size": tasks}))
    try:
        ledger = Ledger(engine)
        await ledger.balance(PAYABLE_ACCOUNT)  # Open a connection before the clock starts.
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        cpu_started_s = time.process_time()
        counts = [[0, 0, 0] for _ in range(tasks)]
        run_id = uuid.uuid4().hex[:8]
        await asyncio.gather(
            *(
                _pairs(
                    ledger,
                    tag=f"{run_id}:{worker}:{task}",
                    # Each task starts at another account, so "many" spreads from the first pair on.
                    account_indexes=account_indexes[task:] + account_indexes[:task],
                    deadline=deadline,
                    counts=counts[task],
                )
                for task in range(tasks)
            )
        )
        cpu_s = time.process_time() - cpu_started_s
        pairs, errors, insufficient = (sum(c[k] for c in counts) for k in range(3))
        return WorkerResult(pairs, errors, insufficient, cpu_s=cpu_s)
    finally:
        await engine.dispose()


def _worker_process(
    url: str, worker: int, tasks: int, account_indexes: list[int], start_at: float, seconds: float, out: Any
) -> None:
    result = asyncio.run(
        _worker(
            url,
            worker=worker,
            tasks=tasks,
            account_indexes=account_indexes,
            start_at=start_at,
            seconds=seconds,
        )
    )
    out.put(result)


def run_scenario(url: str, scenario: Scenario, *, seconds: float, tasks: int, accounts: int) -> WorkerResult:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + START_DELAY_S + 0.5 * scenario.processes
    processes = []
    for worker in range(scenario.processes):
        if scenario.shape == "hot":
            indexes = [0]
        else:
            # Disjoint slices per process, so "many" measures the store, not contention.
            indexes = [i for i in range(accounts) if i % scenario.processes == worker] or [worker % accounts]
        process = context.Process(
            target=_worker_process, args=(url, worker, tasks, indexes, start_at, seconds, queue)
        )
        process.start()
        processes.append(process)
    results = [queue.get(timeout=WORKER_JOIN_TIMEOUT_S) for _ in processes]
    for process in processes:
        process.join(timeout=WORKER_JOIN_TIMEOUT_S)
        assert process.exitcode == 0, f"worker exited with {process.exitcode}"
    return WorkerResult(
        pairs=sum(r.pairs for r in results),
        errors=sum(r.errors for r in results),
        insufficient=sum(r.insufficient for r in results),
        cpu_s=sum(r.cpu_s for r in results),
    )


async def _pg_create(dsn: str) -> str | None:
    try:
        admin = await asyncpg.connect(dsn, timeout=PG_CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        print(f"PostgreSQL unreachable at {dsn}: {error}; its scenarios are skipped")
        return None
    name = f"megarouter_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _pg_drop(dsn: str, name: str) -> None:
    admin = await asyncpg.connect(dsn, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _pg_version(dsn: str) -> str:
    admin = await asyncpg.connect(dsn, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        return str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()


async def _check(url: str) -> int:
    engine = create_ledger_engine(url)
    try:
        return len(await check_ledger(engine))
    finally:
        await engine.dispose()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine(pg_version: str | None) -> str:
    load = os.getloadavg()
    return (
        f"{platform.node()}: {_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {pg_version or 'n/a'}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def _backend_scenarios(backend: str, processes: int) -> list[Scenario]:
    return [Scenario(backend, p, shape) for p in (1, processes) for shape in ("many", "hot")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured wall time per scenario")
    parser.add_argument("--processes", type=int, default=max(2, min(4, os.cpu_count() or 2)))
    parser.add_argument("--tasks", type=int, default=8, help="concurrent asyncio tasks per process")
    parser.add_argument("--accounts", type=int, default=64, help="credit accounts for the 'many' shape")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("MEGAROUTER_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    assert 0.5 <= args.seconds <= 10, "--seconds is bounded so the whole run stays under 2 minutes"
    assert 2 <= args.processes <= 16
    assert 1 <= args.tasks <= 64
    assert 1 <= args.accounts <= 10_000
    started = time.monotonic()

    pg_name = None if args.skip_postgres else asyncio.run(_pg_create(args.pg_dsn))
    pg_version = asyncio.run(_pg_version(args.pg_dsn)) if pg_name else None
    print(describe_machine(pg_version))
    print(
        f"pairs = hold {HOLD_NANO_USD} + capture {CAPTURE_NANO_USD} nano-USD; "
        f"{args.seconds:g} s per scenario; {args.tasks} tasks per process; "
        f"'many' = {args.accounts} accounts, 'hot' = 1 account\n"
    )
    print(
        f"{'backend':<10} {'procs':>5} {'accounts':>8} {'pairs':>8} {'pairs/s':>9} {'errors':>6} "
        f"{'cpu ms/pair':>11}"
    )
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        urls = {"sqlite": f"sqlite+aiosqlite:///{Path(directory) / 'ledger.db'}"}
        if pg_name:
            base = args.pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            urls["postgres"] = f"{base}/{pg_name}"
        try:
            for backend, url in urls.items():
                asyncio.run(prepare(url, args.accounts))
                for scenario in _backend_scenarios(backend, args.processes):
                    result = run_scenario(
                        url, scenario, seconds=args.seconds, tasks=args.tasks, accounts=args.accounts
                    )
                    rate = result.pairs / args.seconds
                    shape = str(args.accounts) if scenario.shape == "many" else "1 (hot)"
                    print(
                        f"{backend:<10} {scenario.processes:>5} {shape:>8} {result.pairs:>8} {rate:>9.0f} "
                        f"{result.errors:>6} {result.cpu_s * 1000 / max(1, result.pairs):>11.2f}",
                        flush=True,
                    )
                    assert result.insufficient == 0, "funding too small for this run"
                problems = asyncio.run(_check(url))
                print(f"{backend:<10} ledger check: {'clean' if problems == 0 else f'{problems} problems'}")
        finally:
            if pg_name:
                asyncio.run(_pg_drop(args.pg_dsn, pg_name))
    elapsed_s = time.monotonic() - started
    print(f"\ntotal {elapsed_s:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    assert elapsed_s < TOTAL_BUDGET_S, (
        f"benchmark took {elapsed_s:.0f} s, over its {TOTAL_BUDGET_S:.0f} s budget"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
