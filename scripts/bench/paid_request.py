#!/usr/bin/env python3
"""What a paid request costs in time on this machine: x402 verification, settlement, and the whole request.

Self-contained: starts its own Anvil, deploys and funds the test tokens, runs the simulators and
MegaRouter (create_app on a real TCP port on 127.0.0.1) in this process, against SQLite in a temporary
directory or, with --database-url, a fresh database created on that PostgreSQL server and dropped at
the end. Phases, each run sequentially and then at --concurrency:

  (a) verify   decode + verify_payment_offchain + verify_payment_onchain, called directly on the same chain
  (b) settle   Settler.settle of an already verified payment (a separate Settler with its own key, so its
               transaction nonces never clash with the server's settlement wallet)
  (c) paid     POST with PAYMENT-SIGNATURE until the 200 is read (the 402 offer is fetched once, outside)
  (d) baseline the same completion asked from the simulator directly, without MegaRouter

Columns: latency percentiles (nearest rank) and mean per operation, operations per second over the pass,
and CPU milliseconds per operation spent by this process and by Anvil (read from /proc). Inside (a) the
three calls are timed one by one. Inside (c) the request is cut into steps by the proxy's own structured
log events (payment_settled, inference_charged) and by timing wrappers put on the running app's
SettlementIntents.claim and Settler.settle instances; no proxy file is changed. Client, server, simulator
and chain client share one event loop and one process, so at concurrency > 1 the client's own work is
part of what is measured, and requests queue for that one loop. The plumbing it shares with
api_latency.py and fault_success.py (machine line, /proc CPU times, tokens, settings, fresh database, serving
an app) comes from _harness.py; the phases, step marks and report are this benchmark's own.

Usage: .venv/bin/python scripts/bench/paid_request.py [--requests N] [--concurrency C] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from _harness import (
    anvil_accounts,
    bench_main,
    deploy_and_fund,
    fresh_database,
    machine_description,
    mean_ms,
    percentile_ms,
    process_tree,
    processes_cpu_s,
    serve,
)
from aiohttp import web
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import check_ledger
from proxy.api.app_keys import DB_ENGINE, SETTLEMENT_INTENTS, SETTLER
from proxy.app import create_app
from proxy.catalog import load_catalog
from proxy.devnet.anvil import run_anvil
from proxy.devnet.providers import SIMULATOR_API_KEY
from proxy.devnet.settings import devnet_settings
from proxy.devnet.simulator import start_simulators
from x402.chain import TokenReader
from x402.client import sign_payment
from x402.codec import decode_payment_header, encode_header
from x402.models import PaymentRequired, PaymentRequirements
from x402.settle import Settler
from x402.verify import VerifiedPayment, verify_payment_offchain, verify_payment_onchain

MODEL_ID = "openai/gpt-4o-mini"
PROMPT = "Name three primary colours."
OUTPUT_TOKENS_MAX = 64
# Account 0 is the server's settlement wallet, 1..9 pay, 10 submits settlements for phase (b).
PAYER_INDEXES = range(1, 10)
BENCH_SETTLER_INDEX = 10
ANVIL_ACCOUNT_COUNT = 11
PAYER_FUNDS_ATOMIC = 1_000 * 10**6
WARMUP_COUNT = 3
REQUESTS_MAX = 500  # Payments are signed before a pass; a pass must end well within their 120 s validity.
CONCURRENCY_MAX = 64
RUN_TIMEOUT_S = 300.0
HTTP_TIMEOUT_S = 60.0


@dataclass
class PassResult:
    """One phase at one concurrency: per-operation latencies and the pass's wall time."""

    name: str
    concurrency: int
    latencies_s: list[float]
    wall_s: float
    # CPU time over the pass per operation: this process (client, router, simulator) and the Anvil process.
    cpu_ms_per_op: float
    anvil_cpu_ms_per_op: float
    # Steps inside one operation, printed under the phase: (label, one duration per operation).
    steps: list[tuple[str, list[float]]] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.wall_s


@dataclass
class StepMarks:
    """perf_counter() marks per request id, written by the log recorder and the timing wrappers."""

    by_request_id: dict[str, dict[str, float]] = field(default_factory=dict)

    def mark(self, request_id: str, name: str) -> None:
        if request_id:
            self.by_request_id.setdefault(request_id, {})[name] = time.perf_counter()


@dataclass
class Bench:
    """Everything the phases share once the chain, simulator and server are up."""

    session: aiohttp.ClientSession
    router_url: str
    simulator_url: str
    upstream_model: str
    offer: PaymentRequired
    payers: list[LocalAccount]
    reader: TokenReader
    settler: Settler
    marks: StepMarks
    payment_counter: Iterator[int]
    anvil_pids: list[int]

    @property
    def requirements(self) -> PaymentRequirements:
        return self.offer.accepts[0]

    def next_payer(self) -> LocalAccount:
        return self.payers[next(self.payment_counter) % len(self.payers)]


def record_log_events(marks: StepMarks) -> None:
    """Replaces create_app's structlog setup: info events become marks; warnings and errors still print."""

    def recorder(_logger: Any, _method: str, event_dict: structlog.typing.EventDict) -> Any:
        marks.mark(str(event_dict.get("request_id", "")), str(event_dict.get("event", "")))
        if event_dict.get("level") in ("debug", "info"):
            raise structlog.DropEvent
        return event_dict

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            recorder,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _current_request_id() -> str:
    return str(structlog.contextvars.get_contextvars().get("request_id", ""))


def instrument_app(app: web.Application, marks: StepMarks) -> None:
    """Marks when the gate claims the authorization (verification is done) and when settlement runs."""
    intents, settler = app[SETTLEMENT_INTENTS], app[SETTLER]
    claim, settle = intents.claim, settler.settle

    async def timed_claim(**kwargs: Any) -> Any:
        marks.mark(_current_request_id(), "claim_started")
        return await claim(**kwargs)

    async def timed_settle(payment: VerifiedPayment, **kwargs: Any) -> Any:
        request_id = _current_request_id()
        marks.mark(request_id, "settle_started")
        result = await settle(payment, **kwargs)
        marks.mark(request_id, "settle_finished")
        return result

    # Instance attributes shadow the methods for this app only; the classes and files stay untouched.
    intents.claim = timed_claim  # type: ignore[method-assign]
    settler.settle = timed_settle  # type: ignore[method-assign]


async def run_pass(
    name: str,
    count: int,
    concurrency: int,
    operation: Callable[[int], Awaitable[float]],
    *,
    anvil_pids: list[int],
) -> PassResult:
    """Runs `operation(i)` for i < count on `concurrency` workers; each returns its own timed duration."""
    assert count > 0
    assert concurrency > 0
    indexes = iter(range(count))
    latencies_s: list[float] = []

    async def worker() -> None:
        for index in indexes:
            latencies_s.append(await operation(index))

    cpu_started_s, anvil_cpu_started_s = time.process_time(), processes_cpu_s(anvil_pids)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(worker())
    wall_s = time.perf_counter() - started
    assert len(latencies_s) == count
    return PassResult(
        name=name,
        concurrency=concurrency,
        latencies_s=latencies_s,
        wall_s=wall_s,
        cpu_ms_per_op=(time.process_time() - cpu_started_s) * 1000 / count,
        anvil_cpu_ms_per_op=(processes_cpu_s(anvil_pids) - anvil_cpu_started_s) * 1000 / count,
    )


def sign_headers(bench: Bench, count: int, signing_s: list[float]) -> list[str]:
    """Fresh payments (random EIP-3009 nonce each), signed before the timed pass as an agent would."""
    headers = []
    for _ in range(count):
        started = time.perf_counter()
        payload = sign_payment(
            bench.requirements, bench.next_payer(), now_unix_s=int(time.time()), resource=bench.offer.resource
        )
        headers.append(encode_header(payload))
        signing_s.append(time.perf_counter() - started)
    return headers


VERIFY_STEPS = ("decode_payment_header", "verify_payment_offchain", "verify_payment_onchain")


async def verify_header(
    bench: Bench, header: str, step_s: dict[str, list[float]] | None = None
) -> VerifiedPayment:
    """The gate's verification, step by step; `step_s` collects each step's duration when given."""
    marks = [time.perf_counter()]
    payload = decode_payment_header(header, 2)
    marks.append(time.perf_counter())
    verified = verify_payment_offchain(payload, bench.offer.accepts, int(time.time()))
    marks.append(time.perf_counter())
    await verify_payment_onchain(bench.reader, verified)
    marks.append(time.perf_counter())
    if step_s is not None:
        for name, start, end in zip(VERIFY_STEPS, marks[:-1], marks[1:], strict=True):
            step_s.setdefault(name, []).append(end - start)
    return verified


async def phase_verify(bench: Bench, count: int, concurrency: int, signing_s: list[float]) -> PassResult:
    headers = sign_headers(bench, count, signing_s)
    step_s: dict[str, list[float]] = {}

    async def operation(index: int) -> float:
        started = time.perf_counter()
        await verify_header(bench, headers[index], step_s)
        return time.perf_counter() - started

    result = await run_pass(
        "(a) verify: decode+offchain+onchain", count, concurrency, operation, anvil_pids=bench.anvil_pids
    )
    result.steps = [(name, step_s[name]) for name in VERIFY_STEPS]
    return result


async def phase_settle(bench: Bench, count: int, concurrency: int, signing_s: list[float]) -> PassResult:
    verified = [await verify_header(bench, header) for header in sign_headers(bench, count, signing_s)]

    async def operation(index: int) -> float:
        started = time.perf_counter()
        await bench.settler.settle(verified[index])
        return time.perf_counter() - started

    return await run_pass(
        "(b) settle: Settler.settle", count, concurrency, operation, anvil_pids=bench.anvil_pids
    )


def chat_body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": OUTPUT_TOKENS_MAX,
    }


async def phase_paid(bench: Bench, count: int, concurrency: int, signing_s: list[float]) -> PassResult:
    headers = sign_headers(bench, count, signing_s)
    body = chat_body(MODEL_ID)
    request_ids: list[str] = []
    url = f"{bench.router_url}/v1/chat/completions"

    async def operation(index: int) -> float:
        request_id = f"bench-{uuid.uuid4().hex}"
        request_headers = {"PAYMENT-SIGNATURE": headers[index], "X-Request-Id": request_id}
        bench.marks.mark(request_id, "sent")
        started = time.perf_counter()
        async with bench.session.post(url, json=body, headers=request_headers) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"paid request answered {response.status}: {text[:300]}")
        elapsed_s = time.perf_counter() - started
        bench.marks.mark(request_id, "received")
        request_ids.append(request_id)
        return elapsed_s

    result = await run_pass(
        "(c) paid request via HTTP", count, concurrency, operation, anvil_pids=bench.anvil_pids
    )
    result.steps = step_latencies(bench.marks, request_ids)
    return result


async def phase_baseline(bench: Bench, count: int, concurrency: int) -> PassResult:
    body = chat_body(bench.upstream_model)
    url = f"{bench.simulator_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {SIMULATOR_API_KEY}"}

    async def operation(_index: int) -> float:
        started = time.perf_counter()
        async with bench.session.post(url, json=body, headers=headers) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"simulator answered {response.status}: {text[:300]}")
        return time.perf_counter() - started

    return await run_pass(
        "(d) baseline: simulator direct", count, concurrency, operation, anvil_pids=bench.anvil_pids
    )


# Steps inside a paid request, between consecutive marks (names are the marks they span).
REQUEST_STEPS = (
    ("http in, parse, quote, decode+verify", "sent", "claim_started"),
    ("claim authorization (DB)", "claim_started", "settle_started"),
    ("settle (store intent, send, receipt)", "settle_started", "settle_finished"),
    ("book deposit (ledger)", "settle_finished", "payment_settled"),
    ("hold, upstream call, capture", "payment_settled", "inference_charged"),
    ("render, http out", "inference_charged", "received"),
)


def step_latencies(marks: StepMarks, request_ids: list[str]) -> list[tuple[str, list[float]]]:
    steps: list[tuple[str, list[float]]] = []
    for label, start, end in REQUEST_STEPS:
        durations = [
            marks.by_request_id[rid][end] - marks.by_request_id[rid][start]
            for rid in request_ids
            if {start, end} <= marks.by_request_id.get(rid, {}).keys()
        ]
        assert len(durations) == len(request_ids), f"missing marks for step {label!r}"
        steps.append((label, durations))
    return steps


def format_row(label: str, latencies_s: list[float], result: PassResult | None = None) -> str:
    row = (
        f"  {label:<40} {len(latencies_s):>4} {percentile_ms(latencies_s, 50):>8.2f} "
        f"{percentile_ms(latencies_s, 90):>8.2f} {percentile_ms(latencies_s, 99):>8.2f} "
        f"{mean_ms(latencies_s):>8.2f}"
    )
    if result is None:
        return row
    return (
        f"{row} {result.requests_per_s:>8.1f} {result.cpu_ms_per_op:>8.2f} {result.anvil_cpu_ms_per_op:>8.2f}"
    )


def print_report(concurrency: int, results: list[PassResult]) -> None:
    print(f"\nconcurrency {concurrency}")
    print(
        f"  {'phase':<40} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"
        f" {'cpu ms':>8} {'anvil ms':>8}"
    )
    for result in results:
        print(format_row(result.name, result.latencies_s, result))
        for label, durations in result.steps:
            print(format_row(f"  {label}", durations))
    by_name = {result.name[:3]: result for result in results}
    paid, baseline = by_name["(c)"], by_name["(d)"]
    print(
        f"  ratio total/baseline: mean {mean_ms(paid.latencies_s) / mean_ms(baseline.latencies_s):.1f}x, "
        f"p50 {percentile_ms(paid.latencies_s, 50) / percentile_ms(baseline.latencies_s, 50):.1f}x; "
        f"throughput {paid.requests_per_s:.1f} vs {baseline.requests_per_s:.1f} req/s"
    )


async def fetch_offer(session: aiohttp.ClientSession, router_url: str) -> PaymentRequired:
    async with session.post(f"{router_url}/v1/chat/completions", json=chat_body(MODEL_ID)) as response:
        document = await response.json()
        if response.status != 402:
            raise RuntimeError(f"expected a 402 offer, got {response.status}: {document}")
    return PaymentRequired.model_validate(document)


async def run_phases(bench: Bench, requests: int, concurrency_levels: list[int]) -> None:
    signing_s: list[float] = []
    # Warm-up: token domain caches, DB connections, HTTP keep-alive, first settlement nonces.
    await phase_verify(bench, WARMUP_COUNT, 1, [])
    await phase_settle(bench, WARMUP_COUNT, 1, [])
    await phase_paid(bench, WARMUP_COUNT, 1, [])
    await phase_baseline(bench, WARMUP_COUNT, 1)
    for concurrency in concurrency_levels:
        results = [
            await phase_verify(bench, requests, concurrency, signing_s),
            await phase_settle(bench, requests, concurrency, signing_s),
            await phase_paid(bench, requests, concurrency, signing_s),
            await phase_baseline(bench, requests, concurrency),
        ]
        print_report(concurrency, results)
    print(f"\nagent side, not in any phase above: sign+encode one payment, over {len(signing_s)} payments")
    print(format_row("sign_payment + encode_header", signing_s))


async def run(requests: int, concurrency: int, database_url: str | None) -> None:
    accounts = anvil_accounts(ANVIL_ACCOUNT_COUNT)
    marks = StepMarks()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        async with (
            run_anvil(extra_args=("--accounts", str(ANVIL_ACCOUNT_COUNT))) as anvil,
            start_simulators(("bench",)) as simulators,
            fresh_database(database_url, Path(directory)) as db_url,
        ):
            print(machine_description(db_url))
            w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
            try:
                tokens = await deploy_and_fund(
                    w3, accounts, payer_indexes=PAYER_INDEXES, amount_atomic=PAYER_FUNDS_ATOMIC
                )
                settings = devnet_settings(
                    anvil=anvil,
                    tokens=tokens,
                    settlement_key=accounts[0].key.hex(),
                    simulator_base_url=simulators.base_url,
                    database_url=db_url,
                    default_model=MODEL_ID,
                    # JSON logs as before; record_log_events then replaces the renderer with its recorder.
                    log_format="json",
                )
                app = create_app(settings)
                record_log_events(marks)
                connector = aiohttp.TCPConnector(limit=max(concurrency, 1) * 2)
                timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
                async with (
                    serve(app) as router_url,
                    aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                ):
                    instrument_app(app, marks)
                    reader = TokenReader(w3)
                    bench = Bench(
                        session=session,
                        router_url=router_url,
                        simulator_url=simulators.base_url,
                        upstream_model=load_catalog().get(MODEL_ID).upstream_model,
                        offer=await fetch_offer(session, router_url),
                        payers=[accounts[index] for index in PAYER_INDEXES],
                        reader=reader,
                        settler=Settler(w3, accounts[BENCH_SETTLER_INDEX], reader=reader),
                        marks=marks,
                        payment_counter=iter(range(10**9)),
                        anvil_pids=process_tree(anvil.process.pid),
                    )
                    print(
                        f"setup {time.perf_counter() - started:.1f} s; {requests} requests per phase "
                        f"(+{WARMUP_COUNT} warm-up); model {MODEL_ID}, max_tokens {OUTPUT_TOKENS_MAX}, "
                        f"quote {bench.requirements.amount} atomic USDC"
                    )
                    levels = sorted({1, concurrency})
                    await run_phases(bench, requests, levels)
                    problems = await check_ledger(app[DB_ENGINE])
                    if problems:
                        raise RuntimeError(f"ledger check failed after the run: {problems}")
                    print("ledger check after the run: ok")
            finally:
                await w3.provider.disconnect()
    load_1m = os.getloadavg()[0]
    print(
        f"total run time {time.perf_counter() - started:.1f} s; load average {load_1m:.2f} (1 min) at the end"
    )


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=100, help=f"per phase and pass (1..{REQUESTS_MAX})")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="the second pass's concurrency (the first is 1)"
    )
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server to create a fresh database on"
    )
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.requests <= REQUESTS_MAX:
        parser.error(f"--requests must be within 1..{REQUESTS_MAX}")
    if not 1 <= arguments.concurrency <= CONCURRENCY_MAX:
        parser.error(f"--concurrency must be within 1..{CONCURRENCY_MAX}")
    return arguments


async def bounded_run(arguments: argparse.Namespace) -> None:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await run(arguments.requests, arguments.concurrency, arguments.database_url)


def main(argv: list[str] | None = None) -> int:
    return bench_main(lambda: bounded_run(parse_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
