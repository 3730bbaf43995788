#!/usr/bin/env python3
"""MegaRouter's added latency and CPU per request over the simulated upstream called directly (issue 4).

Self-contained: starts its own Anvil, deploys and funds the test tokens, and runs three processes besides
this one: the simulated provider, MegaRouter (create_app on a real TCP port of 127.0.0.1, SQLite in a
temporary directory or, with --database-url, a fresh PostgreSQL database) and the load generator. The
caller is a wallet that tops up its credit once with x402 (`POST /v1/credits/topup`) and gets an API key
bound to that credit, so the measured requests are keyed: no chain work in their path, but the key lookup,
the hold on the credit, the capture and the usage record are.

For each of non-streaming and streaming, at concurrency 1 and 32, the same request (model gpt-4o-mini,
max_tokens 64, the simulator answering as fast as it can) is sent N times directly to the simulator
(baseline) and N times through MegaRouter, in the same run. Printed per pass: latency p50/p99/mean
(nearest rank), requests per second, and CPU milliseconds per request of each process, read from /proc
(router, simulator) or measured inside it (client). Then MegaRouter's added latency (router − direct, at
p50 and at p99: a difference of percentiles, not a percentile of differences), the time to first SSE
event it adds to streams, and the router process's CPU per request (its CPU delta over the pass / N;
this includes rendering its JSON log lines, written to a file).

All processes share this machine's CPUs: at concurrency 32 on a small machine, the client, simulator and
router compete, so latencies include queueing for a CPU. The load average is printed at start and end.

Usage: .venv/bin/python scripts/bench/api_latency.py [--requests N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _harness import (
    ClientJob,
    ClientResult,
    ClientRunner,
    anvil_accounts,
    bench_main,
    child_router,
    child_simulators,
    deploy_and_fund_on,
    fresh_database,
    funded_api_key,
    load_average_line,
    machine_description,
    mean_ms,
    percentile_ms,
    processes_cpu_s,
)

from proxy.catalog import load_catalog
from proxy.devnet.anvil import run_anvil
from proxy.devnet.providers import SIMULATOR_API_KEY
from proxy.devnet.settings import devnet_settings

MODEL_ID = "openai/gpt-4o-mini"
PROMPT = "Name three primary colours."
OUTPUT_TOKENS_MAX = 64
PAYER_INDEX = 1
PAYER_FUNDS_ATOMIC = 1_000 * 10**6
TOPUP_USD = "20"
CONCURRENCY_LEVELS = (1, 32)
WARMUP_COUNT = 30
REQUESTS_MAX = 2_000
RUN_TIMEOUT_S = 170.0
SETUP_HTTP_TIMEOUT_S = 60.0


@dataclass
class Pass:
    """One path (direct or via MegaRouter) at one concurrency, streaming or not."""

    path: str
    result: ClientResult
    router_cpu_s: float
    simulator_cpu_s: float

    @property
    def count(self) -> int:
        return len(self.result.outcomes)

    def cpu_ms_per_request(self, cpu_s: float) -> float:
        return cpu_s * 1000 / self.count


@dataclass(frozen=True)
class Target:
    router_url: str
    simulator_url: str
    api_key: str
    upstream_model: str
    router_pid: int
    simulator_pid: int


def chat_body(model: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": OUTPUT_TOKENS_MAX,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def jobs(target: Target, *, stream: bool, count: int, concurrency: int) -> tuple[ClientJob, ClientJob]:
    """(direct to the simulator, through MegaRouter with the API key): the same request otherwise."""
    direct = ClientJob(
        url=f"{target.simulator_url}/v1/chat/completions",
        body=chat_body(target.upstream_model, stream=stream),
        headers={"Authorization": f"Bearer {SIMULATOR_API_KEY}"},
        count=count,
        concurrency=concurrency,
    )
    routed = ClientJob(
        url=f"{target.router_url}/v1/chat/completions",
        body=chat_body(MODEL_ID, stream=stream),
        headers={"Authorization": f"Bearer {target.api_key}"},
        count=count,
        concurrency=concurrency,
        keep_headers=("X-MegaRouter-Model",),
    )
    return direct, routed


async def measure(client: ClientRunner, target: Target, path: str, job: ClientJob) -> Pass:
    pids = (target.router_pid, target.simulator_pid)
    router_started_s, simulator_started_s = (processes_cpu_s([pid]) for pid in pids)
    result = await client.run(job)
    router_s, simulator_s = (processes_cpu_s([pid]) for pid in pids)
    failed = [outcome for outcome in result.outcomes if not outcome.ok]
    if failed:
        raise RuntimeError(f"{path}: {len(failed)} of {job.count} requests failed, first: {failed[0]}")
    served_by = {outcome.headers.get("X-MegaRouter-Model") for outcome in result.outcomes}
    assert not job.keep_headers or served_by == {MODEL_ID}, served_by
    return Pass(path, result, router_s - router_started_s, simulator_s - simulator_started_s)


def print_passes(title: str, direct: Pass, routed: Pass, *, stream: bool) -> None:
    print(f"\n{title}")
    header = (
        f"  {'path':<16} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8} "
        f"{'router cpu':>10} {'sim cpu':>8} {'client cpu':>10}"
    )
    if stream:
        header += f" {'ttfe p50':>8} {'ttfe p99':>8}"
    print(header + "   (cpu: ms per request)")
    for one in (direct, routed):
        latencies = one.result.latencies_s
        row = (
            f"  {one.path:<16} {one.count:>5} {percentile_ms(latencies, 50):>8.2f} "
            f"{percentile_ms(latencies, 99):>8.2f} {mean_ms(latencies):>8.2f} "
            f"{one.count / one.result.wall_s:>8.1f} {one.cpu_ms_per_request(one.router_cpu_s):>10.2f} "
            f"{one.cpu_ms_per_request(one.simulator_cpu_s):>8.2f} "
            f"{one.cpu_ms_per_request(one.result.client_cpu_s):>10.2f}"
        )
        if stream:
            firsts = one.result.first_events_s
            row += f" {percentile_ms(firsts, 50):>8.2f} {percentile_ms(firsts, 99):>8.2f}"
        print(row)
    added_p50 = percentile_ms(routed.result.latencies_s, 50) - percentile_ms(direct.result.latencies_s, 50)
    added_p99 = percentile_ms(routed.result.latencies_s, 99) - percentile_ms(direct.result.latencies_s, 99)
    ratio_p50 = percentile_ms(routed.result.latencies_s, 50) / percentile_ms(direct.result.latencies_s, 50)
    print(
        f"  added by MegaRouter: p50 +{added_p50:.2f} ms, p99 +{added_p99:.2f} ms "
        f"(p50 {ratio_p50:.1f}x the direct call); router CPU "
        f"{routed.cpu_ms_per_request(routed.router_cpu_s):.2f} ms per request; throughput "
        f"{routed.count / routed.result.wall_s:.0f} vs {direct.count / direct.result.wall_s:.0f} req/s"
    )
    if stream:
        ttfe_p50 = percentile_ms(routed.result.first_events_s, 50) - percentile_ms(
            direct.result.first_events_s, 50
        )
        ttfe_p99 = percentile_ms(routed.result.first_events_s, 99) - percentile_ms(
            direct.result.first_events_s, 99
        )
        print(f"  time to first SSE event added: p50 +{ttfe_p50:.2f} ms, p99 +{ttfe_p99:.2f} ms")


async def run_passes(client: ClientRunner, target: Target, requests: int) -> None:
    for stream in (False, True):
        for job in jobs(target, stream=stream, count=WARMUP_COUNT, concurrency=4):
            await measure(client, target, "warm-up", job)
    for concurrency in CONCURRENCY_LEVELS:
        for stream in (False, True):
            direct_job, routed_job = jobs(target, stream=stream, count=requests, concurrency=concurrency)
            direct = await measure(client, target, "direct (sim)", direct_job)
            routed = await measure(client, target, "via MegaRouter", routed_job)
            kind = "streaming" if stream else "non-streaming"
            print_passes(f"{kind}, concurrency {concurrency}", direct, routed, stream=stream)


async def run(requests: int, database_url: str | None) -> None:
    started = time.perf_counter()
    accounts = anvil_accounts(PAYER_INDEX + 1)
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        async with (
            run_anvil() as anvil,
            fresh_database(database_url, Path(directory)) as db_url,
            child_simulators(("bench",)) as simulator,
        ):
            print(machine_description(db_url))
            tokens = await deploy_and_fund_on(
                anvil, accounts, payer_indexes=[PAYER_INDEX], amount_atomic=PAYER_FUNDS_ATOMIC
            )
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
            timeout = aiohttp.ClientTimeout(total=SETUP_HTTP_TIMEOUT_S)
            client = ClientRunner()
            try:
                async with (
                    child_router(settings, Path(directory) / "router.log") as router,
                    aiohttp.ClientSession(timeout=timeout) as session,
                ):
                    api_key = await funded_api_key(
                        session, router.url, accounts[PAYER_INDEX], amount_usd=TOPUP_USD
                    )
                    target = Target(
                        router_url=router.url,
                        simulator_url=simulator.url,
                        api_key=api_key,
                        upstream_model=load_catalog().get(MODEL_ID).upstream_model,
                        router_pid=router.pid,
                        simulator_pid=simulator.pid,
                    )
                    print(
                        f"setup {time.perf_counter() - started:.1f} s; {requests} requests per pass "
                        f"(+{WARMUP_COUNT} warm-up); model {MODEL_ID}, max_tokens {OUTPUT_TOKENS_MAX}; "
                        f"keyed requests on a wallet credit topped up once with x402 ({TOPUP_USD} USD)"
                    )
                    await run_passes(client, target, requests)
            finally:
                client.close()
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s; {load_average_line('at the end')}")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help=f"per path and pass (1..{REQUESTS_MAX})")
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server to create a fresh database on"
    )
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.requests <= REQUESTS_MAX:
        parser.error(f"--requests must be within 1..{REQUESTS_MAX}")
    return arguments


async def bounded_run(arguments: argparse.Namespace) -> None:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await run(arguments.requests, arguments.database_url)


def main(argv: list[str] | None = None) -> int:
    return bench_main(lambda: bounded_run(parse_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
