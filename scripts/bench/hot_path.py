#!/usr/bin/env python3
"""The hot path side by side (issue 10): a bare aiohttp pass-through (the floor for a Python proxy) and
MegaRouter with full accounting, against the same instant upstream, in one run.

Processes: the simulated provider (OpenAI format, JSON and SSE, answering at once), a bare aiohttp proxy
that forwards the body to it and streams the answer back byte for byte (no auth, no accounting), MegaRouter
(`create_app`, SQLite in a temporary directory; then again on a fresh PostgreSQL database when one is
reachable), and the load generator, each in a process of its own so that the CPU read from /proc
(utime + stime) belongs to one role only. MegaRouter's requests are keyed: a wallet tops up its credit once
with x402 and gets an API key, so every measured request runs auth, quote, hold, routing, the upstream
call, capture and the usage event.

For non-streaming and streaming at concurrency 1 and 32: CPU ms per request of the server process, req/s,
p50/p99 latency, time to first SSE event added over the pass-through at p50, the server's RSS at the end,
and MegaRouter's ratios to the pass-through (the issue's goal: CPU ≤ 2×, req/s ≥ 0.5× at c=32, p99 ≤ 50
ms). All processes share this machine's CPUs (printed with the load average): figures are comparable
within one run, not across machines.

Usage: .venv/bin/python scripts/bench/hot_path.py [--requests N] [--pg-dsn DSN | --skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from _harness import (
    ClientJob,
    ClientResult,
    ClientRunner,
    anvil_accounts,
    bench_main,
    child_passthrough,
    child_router,
    child_simulators,
    deploy_and_fund_on,
    fresh_database,
    funded_api_key,
    load_average_line,
    machine_description,
    percentile_ms,
    processes_cpu_s,
    rss_mb,
)
from api_latency import MODEL_ID, chat_body

from proxy.catalog import load_catalog
from proxy.devnet.anvil import run_anvil
from proxy.devnet.providers import SIMULATOR_API_KEY
from proxy.devnet.settings import devnet_settings

PAYER_INDEX = 1
PAYER_FUNDS_ATOMIC = 1_000 * 10**6
TOPUP_USD = "50"
CONCURRENCY_LEVELS = (1, 32)
WARMUP_COUNT = 50
REQUESTS_MAX = 5_000
RUN_TIMEOUT_S = 590.0
SETUP_HTTP_TIMEOUT_S = 60.0
PG_CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Figures:
    """One server, one pass."""

    count: int
    cpu_ms_per_request: float
    rps: float
    p50_ms: float
    p99_ms: float
    ttft_p50_ms: float | None
    rss_mb: float

    @classmethod
    def of(cls, result: ClientResult, cpu_s: float, pid: int) -> Figures:
        failed = [outcome for outcome in result.outcomes if not outcome.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(result.outcomes)} requests failed, first: {failed[0]}")
        count = len(result.outcomes)
        firsts = result.first_events_s
        return cls(
            count=count,
            cpu_ms_per_request=cpu_s * 1000 / count,
            rps=count / result.wall_s,
            p50_ms=percentile_ms(result.latencies_s, 50),
            p99_ms=percentile_ms(result.latencies_s, 99),
            ttft_p50_ms=percentile_ms(firsts, 50) if firsts else None,
            rss_mb=rss_mb(pid),
        )


async def measure(client: ClientRunner, job: ClientJob, pid: int) -> Figures:
    cpu_started_s = processes_cpu_s([pid])
    result = await client.run(job)
    return Figures.of(result, processes_cpu_s([pid]) - cpu_started_s, pid)


def job_for(url: str, *, model: str, api_key: str, stream: bool, count: int, concurrency: int) -> ClientJob:
    return ClientJob(
        url=f"{url}/v1/chat/completions",
        body=chat_body(model, stream=stream),
        headers={"Authorization": f"Bearer {api_key}"},
        count=count,
        concurrency=concurrency,
    )


def print_row(name: str, figures: Figures, floor: Figures | None) -> None:
    ttft = "" if figures.ttft_p50_ms is None else f"{figures.ttft_p50_ms:>8.2f}"
    row = (
        f"  {name:<24} {figures.cpu_ms_per_request:>8.2f} {figures.rps:>8.0f} {figures.p50_ms:>8.2f} "
        f"{figures.p99_ms:>8.2f} {ttft:>8} {figures.rss_mb:>7.0f}"
    )
    if floor is not None:
        cpu_ratio = figures.cpu_ms_per_request / floor.cpu_ms_per_request
        row += f"   cpu {cpu_ratio:.1f}x, rps {figures.rps / floor.rps:.2f}x"
        if figures.ttft_p50_ms is not None and floor.ttft_p50_ms is not None:
            row += f", ttft +{figures.ttft_p50_ms - floor.ttft_p50_ms:.2f} ms"
    print(row, flush=True)


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int
    model: str
    api_key: str


async def run_passes(client: ClientRunner, servers: list[Server], requests: int) -> None:
    for server in servers:
        for stream in (False, True):
            job = job_for(
                server.url,
                model=server.model,
                api_key=server.api_key,
                stream=stream,
                count=WARMUP_COUNT,
                concurrency=4,
            )
            await measure(client, job, server.pid)
    for concurrency in CONCURRENCY_LEVELS:
        for stream in (False, True):
            print(
                f"\n{'streaming' if stream else 'non-streaming'}, concurrency {concurrency}, "
                f"{requests} requests\n"
                f"  {'server':<24} {'cpu ms':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ttft p50':>8} "
                f"{'rss MB':>7}   (ratios vs the pass-through)"
            )
            floor: Figures | None = None
            for server in servers:
                job = job_for(
                    server.url,
                    model=server.model,
                    api_key=server.api_key,
                    stream=stream,
                    count=requests,
                    concurrency=concurrency,
                )
                figures = await measure(client, job, server.pid)
                print_row(server.name, figures, floor)
                floor = floor or figures


async def _pg_reachable(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=PG_CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        print(f"PostgreSQL unreachable at {dsn} ({error}): its MegaRouter is skipped")
        return False
    await connection.close()
    return True


async def run(requests: int, pg_dsn: str | None) -> None:
    started = time.perf_counter()
    accounts = anvil_accounts(PAYER_INDEX + 1)
    pg_url = None
    if pg_dsn is not None and await _pg_reachable(pg_dsn):
        pg_url = pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        async with (
            run_anvil() as anvil,
            child_simulators(("bench",)) as simulator,
            child_passthrough(simulator.url) as passthrough,
        ):
            print(machine_description())
            tokens = await deploy_and_fund_on(
                anvil, accounts, payer_indexes=[PAYER_INDEX], amount_atomic=PAYER_FUNDS_ATOMIC
            )
            upstream_model = load_catalog().get(MODEL_ID).upstream_model
            servers = [
                Server(
                    "pass-through (floor)",
                    passthrough.url,
                    passthrough.pid,
                    upstream_model,
                    SIMULATOR_API_KEY,
                )
            ]
            client = ClientRunner()
            timeout = aiohttp.ClientTimeout(total=SETUP_HTTP_TIMEOUT_S)
            try:
                async with (
                    contextlib.AsyncExitStack() as stack,
                    aiohttp.ClientSession(timeout=timeout) as session,
                ):
                    backends = [("sqlite", None)] + ([("postgresql", pg_url)] if pg_url else [])
                    for backend, url in backends:
                        db_url = await stack.enter_async_context(
                            fresh_database(url, Path(directory) / backend)
                        )
                        (Path(directory) / backend).mkdir(exist_ok=True)
                        settings = devnet_settings(
                            anvil=anvil,
                            tokens=tokens,
                            settlement_key=accounts[0].key.hex(),
                            simulator_base_url=simulator.url,
                            database_url=db_url,
                            default_model=MODEL_ID,
                            log_format="json",
                            chain_watcher_enabled=False,
                        )
                        router = await stack.enter_async_context(
                            child_router(settings, Path(directory) / f"router-{backend}.log")
                        )
                        api_key = await funded_api_key(
                            session, router.url, accounts[PAYER_INDEX], amount_usd=TOPUP_USD
                        )
                        servers.append(
                            Server(f"MegaRouter ({backend})", router.url, router.pid, MODEL_ID, api_key)
                        )
                    print(
                        f"setup {time.perf_counter() - started:.1f} s; model {MODEL_ID} (max_tokens 64); "
                        f"keyed requests, full accounting; cpu = server process utime+stime per request"
                    )
                    await run_passes(client, servers, requests)
            finally:
                client.close()
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s; {load_average_line('at the end')}")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=500, help=f"per server and pass (1..{REQUESTS_MAX})")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("MEGAROUTER_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")
    )
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.requests <= REQUESTS_MAX:
        parser.error(f"--requests must be within 1..{REQUESTS_MAX}")
    return arguments


async def bounded_run(arguments: argparse.Namespace) -> None:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await run(arguments.requests, None if arguments.skip_postgres else arguments.pg_dsn)


def main(argv: list[str] | None = None) -> int:
    return bench_main(lambda: bounded_run(parse_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
