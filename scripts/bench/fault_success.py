#!/usr/bin/env python3
"""Success rate under injected upstream faults, through a real MegaRouter with failover (issue 5).

Self-contained: its own Anvil and test tokens; two simulated providers, "primary" and "secondary", in a
child process; MegaRouter (create_app on a TCP port of 127.0.0.1, SQLite in a temporary directory) in
another; the load generator in a third. The requested model is PRIMARY_MODEL_ID, a model the catalog
has at two providers: its provider (groq) is pointed at the primary simulator, every other provider at
the secondary, so the named deployment's other provider (together) is the failover target. The caller
uses an API key bound to a wallet credit topped up once with x402.

Cases, each injected through the primary simulator's control endpoint (`POST /_control/faults`, model
`*`) and each against a freshly started router (fresh in-process health, same database, key and credit):
  none              no fault (the latency baseline)
  primary 100% 500  every primary request fails with 500
  primary 50% 500   half fail (seeded)
  primary 429       every primary request answers 429 with Retry-After: RETRY_AFTER_S
N keyed non-streaming requests per case at CONCURRENCY. Printed per case: success rate (HTTP 200), the
distribution of upstream attempts per request (from X-MegaRouter-Attempts; breaker skips listed apart),
which deployment served, the requests each simulator saw (after a fault-free warm-up of WARMUP_COUNT
requests per router), and latency p50/p99 with the latency added
over the no-fault case (a difference of percentiles). Once the primary's breaker is open, the planner
puts that deployment last, so most requests go straight to the other provider in one attempt; a
breaker-open skip is counted only when a request reaches the open deployment in its list.

Usage: .venv/bin/python scripts/bench/fault_success.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections import Counter
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
    percentile_ms,
)

from proxy.catalog import load_catalog
from proxy.devnet.anvil import AnvilNode, run_anvil
from proxy.devnet.providers import simulated_providers
from proxy.devnet.settings import devnet_settings
from proxy.devnet.tokens import DevnetTokens
from proxy.settings import ProviderSettings, Settings

PRIMARY_MODEL_ID = "groq/llama-3.3-70b-versatile"
PRIMARY_PROVIDER = "groq"
PROMPT = "Name three primary colours."
OUTPUT_TOKENS_MAX = 32
PAYER_INDEX = 1
PAYER_FUNDS_ATOMIC = 1_000 * 10**6
TOPUP_USD = "50"
RETRY_AFTER_S = 1
WARMUP_COUNT = 16
REQUESTS_MAX = 2_000
CONCURRENCY_MAX = 64
RUN_TIMEOUT_S = 170.0
SETUP_HTTP_TIMEOUT_S = 60.0
ATTEMPTS_HEADER = "X-MegaRouter-Attempts"
MODEL_HEADER = "X-MegaRouter-Model"
# (label, fault spec for every model of the primary simulator; None = no fault)
CASES: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("none", None),
    ("primary 100% 500", {"error_rate": 1.0, "error_status": 500}),
    ("primary 50% 500", {"error_rate": 0.5, "error_status": 500}),
    (
        f"primary 429 Retry-After {RETRY_AFTER_S}s",
        {"error_rate": 1.0, "error_status": 429, "retry_after_s": RETRY_AFTER_S},
    ),
)


@dataclass(frozen=True)
class CaseResult:
    label: str
    result: ClientResult
    simulator_requests: dict[str, int]


def fault_settings(
    *, anvil: AnvilNode, tokens: DevnetTokens, settlement_key: str, urls: dict[str, str], database_url: str
) -> Settings:
    providers: dict[str, ProviderSettings] = simulated_providers(
        load_catalog(), simulator_base_url=urls["secondary"]
    )
    primary = providers[PRIMARY_PROVIDER]
    providers[PRIMARY_PROVIDER] = primary.model_copy(update={"base_url": f"{urls['primary']}/v1"})
    return devnet_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=settlement_key,
        simulator_base_url=urls["secondary"],
        database_url=database_url,
        default_model=PRIMARY_MODEL_ID,
        providers=providers,
        log_format="json",
        chain_watcher_enabled=False,
    )


async def control(session: aiohttp.ClientSession, base_url: str, path: str, body: dict[str, Any]) -> Any:
    async with session.post(f"{base_url}/_control/{path}", json=body) as response:
        document = await response.json()
        if response.status != 200:
            raise RuntimeError(f"simulator control {path}: {response.status} {document}")
        return document


async def simulator_requests(session: aiohttp.ClientSession, urls: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, base_url in urls.items():
        async with session.get(f"{base_url}/_control/stats") as response:
            stats = await response.json()
        counts[name] = sum(model["requests"] for model in stats["models"].values())
    return counts


def attempts_summary(result: ClientResult) -> tuple[Counter[int], Counter[str], int]:
    """(upstream attempts per request → count, failure outcomes → count, breaker skips in all)."""
    attempts: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    skips = 0
    for outcome in result.outcomes:
        entries = [
            entry.rsplit("=", 1) for entry in outcome.headers.get(ATTEMPTS_HEADER, "").split(", ") if entry
        ]
        tried = [why for _, why in entries if why != "breaker_open"]
        skips += len(entries) - len(tried)
        attempts[len(tried)] += 1
        failures.update(why for why in tried if why != "ok")
    return attempts, failures, skips


def print_case(case: CaseResult, baseline: CaseResult | None, count: int) -> None:
    result = case.result
    print(f"\ncase {case.label}:")
    print(
        f"  success {result.ok_count}/{count} = {100 * result.ok_count / count:.2f}%; statuses "
        + ", ".join(f"{status}: {n}" for status, n in sorted(result.statuses.items()))
    )
    attempts, failures, skips = attempts_summary(result)
    print(
        "  upstream attempts per request: "
        + ", ".join(f"{n} attempt{'s' if n != 1 else ''}: {k}" for n, k in sorted(attempts.items()))
        + f"; failed attempts by kind: {dict(failures) or 'none'}; breaker-open skips: {skips}"
    )
    served = Counter(outcome.headers.get(MODEL_HEADER, "") or "(none)" for outcome in result.outcomes)
    print("  served by: " + ", ".join(f"{model} {n}" for model, n in served.most_common()))
    print(
        "  requests seen by the simulators: "
        + ", ".join(f"{name} {n}" for name, n in case.simulator_requests.items())
    )
    latencies = result.latencies_s
    if not latencies:
        return
    p50, p99 = percentile_ms(latencies, 50), percentile_ms(latencies, 99)
    line = f"  latency p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    if baseline is not None and baseline.result.latencies_s:
        base_p50 = percentile_ms(baseline.result.latencies_s, 50)
        base_p99 = percentile_ms(baseline.result.latencies_s, 99)
        line += f"; added over no fault: p50 {p50 - base_p50:+.2f} ms, p99 {p99 - base_p99:+.2f} ms"
    print(line + f"; {count / result.wall_s:.0f} req/s")


async def run_case(
    label: str,
    fault: dict[str, Any] | None,
    *,
    settings: Settings,
    urls: dict[str, str],
    api_key: str,
    client: ClientRunner,
    session: aiohttp.ClientSession,
    log_path: Path,
    count: int,
    concurrency: int,
) -> CaseResult:
    for base_url in urls.values():
        await control(
            session, base_url, "reset", {}
        )  # The previous case's faults must not reach the warm-up.
    async with child_router(settings, log_path) as router:
        job = ClientJob(
            url=f"{router.url}/v1/chat/completions",
            body={
                "model": PRIMARY_MODEL_ID,
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": OUTPUT_TOKENS_MAX,
            },
            headers={"Authorization": f"Bearer {api_key}"},
            count=count,
            concurrency=concurrency,
            keep_headers=(ATTEMPTS_HEADER, MODEL_HEADER),
        )
        # Warm-up without faults (DB connections, keep-alive), then the counters start from zero.
        await client.run(dataclasses.replace(job, count=WARMUP_COUNT))
        for base_url in urls.values():
            await control(session, base_url, "reset", {})
        if fault is not None:
            await control(session, urls["primary"], "faults", {"model": "*", **fault})
        result = await client.run(job)
    return CaseResult(label, result, await simulator_requests(session, urls))


async def run(count: int, concurrency: int) -> None:
    started = time.perf_counter()
    accounts = anvil_accounts(PAYER_INDEX + 1)
    with tempfile.TemporaryDirectory(prefix="megarouter-bench-") as directory:
        async with (
            run_anvil() as anvil,
            fresh_database(None, Path(directory)) as db_url,
            child_simulators(("primary", "secondary")) as simulators,
        ):
            print(machine_description(db_url))
            tokens = await deploy_and_fund_on(
                anvil, accounts, payer_indexes=[PAYER_INDEX], amount_atomic=PAYER_FUNDS_ATOMIC
            )
            settings = fault_settings(
                anvil=anvil,
                tokens=tokens,
                settlement_key=accounts[0].key.hex(),
                urls=simulators.urls,
                database_url=db_url,
            )
            log_path = Path(directory) / "router.log"
            client = ClientRunner()
            timeout = aiohttp.ClientTimeout(total=SETUP_HTTP_TIMEOUT_S)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with child_router(settings, log_path) as router:
                        api_key = await funded_api_key(
                            session, router.url, accounts[PAYER_INDEX], amount_usd=TOPUP_USD
                        )
                    print(
                        f"setup {time.perf_counter() - started:.1f} s; {count} keyed requests per case at "
                        f"concurrency {concurrency}; model {PRIMARY_MODEL_ID} (provider {PRIMARY_PROVIDER} "
                        f"on the primary simulator, its other providers on the secondary); attempts max "
                        f"{settings.route_attempts_max}, candidates max {settings.route_candidates_max}"
                    )
                    baseline: CaseResult | None = None
                    for label, fault in CASES:
                        case = await run_case(
                            label,
                            fault,
                            settings=settings,
                            urls=simulators.urls,
                            api_key=api_key,
                            client=client,
                            session=session,
                            log_path=log_path,
                            count=count,
                            concurrency=concurrency,
                        )
                        print_case(case, baseline, count)
                        baseline = baseline or case
            finally:
                client.close()
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s; {load_average_line('at the end')}")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400, help=f"per case (1..{REQUESTS_MAX})")
    parser.add_argument("--concurrency", type=int, default=8, help=f"1..{CONCURRENCY_MAX}")
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.requests <= REQUESTS_MAX:
        parser.error(f"--requests must be within 1..{REQUESTS_MAX}")
    if not 1 <= arguments.concurrency <= CONCURRENCY_MAX:
        parser.error(f"--concurrency must be within 1..{CONCURRENCY_MAX}")
    return arguments


async def bounded_run(arguments: argparse.Namespace) -> None:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await run(arguments.requests, arguments.concurrency)


def main(argv: list[str] | None = None) -> int:
    return bench_main(lambda: bounded_run(parse_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
