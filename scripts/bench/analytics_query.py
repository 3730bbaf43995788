#!/usr/bin/env python3
"""GET /v1/analytics over a month of 1,000,000 usage events on PostgreSQL: the roll-ups against a scan.

Loads --events usage events spread over --days (default 1,000,000 over 30 days) into a fresh PostgreSQL
database by COPY: 60 API keys on 30 wallets (each key with its own strategy and 1-3 favourite models,
weighted), 10 % of traffic paid by x402 from 40 keyless wallets, 12 models on 6 providers, 5 % of requests
failed over to a fallback deployment, 3 % errors, 40 % streamed (with a time to first token), log-normal
latencies and token counts, a day/night cycle. The roll-ups are then built from those events by the
migration's own backfill (one INSERT … SELECT; its time is printed), so both sides describe the same data.

Each query shape runs --repeats times through the query function behind the handler (`run_analytics`,
then the JSON the handler renders) and as the baseline: one SQL scan of the raw events computing the same
answer (sums and exact percentiles with `percentile_disc`). The two answers are checked against each other
(every count and sum equal; each percentile in the same histogram bucket as the exact one). Printed: the
median ms of each side and the ratio. Goal: ≤ 200 ms for a month on PostgreSQL.

Usage: .venv/bin/python scripts/bench/analytics_query.py [--events N] [--days D] [--repeats R]
       [--pg-dsn postgresql://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from _harness import bench_main, fresh_database, machine_description
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger import migrate
from proxy.db.latency_buckets import latency_bucket
from proxy.db.migrate import migrate_proxy
from proxy.serving.analytics import AnalyticsQuery, AnalyticsReport, AnalyticsScope, run_analytics

HOUR_S = 3_600
DAY_S = 86_400
COPY_BATCH = 50_000
START_UNIX_S = 1_764_547_200  # 2025-12-01T00:00:00Z: whole days, so day buckets are complete.
GOAL_MS = 200.0
MODELS = (  # (model, provider, median latency ms, output price nano-USD per token, fallback index)
    ("openai/gpt-4o-mini", "openai", 900, 600, 1),
    ("openai/gpt-4.1-nano", "openai", 600, 400, 0),
    ("openai/gpt-4o", "openai", 2_200, 10_000, 3),
    ("anthropic/claude-3-5-haiku-latest", "anthropic", 1_300, 4_000, 0),
    ("anthropic/claude-3-7-sonnet-latest", "anthropic", 3_000, 15_000, 2),
    ("google/gemini-2.0-flash", "google", 700, 400, 6),
    ("google/gemini-1.5-pro", "google", 2_500, 5_000, 4),
    ("groq/llama-3.3-70b-versatile", "groq", 400, 790, 8),
    ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", 800, 880, 7),
    ("deepseek/deepseek-chat", "deepseek", 1_800, 1_100, 0),
    ("mistral/mistral-small-latest", "mistral", 700, 300, 1),
    ("mistral/mistral-large-latest", "mistral", 2_000, 6_000, 4),
)
STRATEGIES = ("balanced", "cost", "latency", "availability")
ERROR_OUTCOMES = ("upstream_failed", "stream_cut", "client_disconnected", "caller_error")
COLUMNS = (
    "request_id",
    "created_at",
    "payer_account",
    "api_key_id",
    "outcome",
    "model_id",
    "provider",
    "strategy",
    "attempts_json",
    "streamed",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "prices_json",
    "catalog_version",
    "quote_nano_usd",
    "cost_nano_usd",
    "overage_nano_usd",
    "hold_id",
    "latency_ms",
    "time_to_first_token_ms",
)


@dataclass(frozen=True)
class Caller:
    payer_account: str
    api_key_id: int | None
    strategy: str
    models: tuple[int, ...]
    model_weights: tuple[float, ...]


def _callers(rng: random.Random) -> tuple[list[Caller], list[float]]:
    """60 keys on 30 wallets, and 40 keyless x402 wallets; the weight of each in the traffic."""
    callers: list[Caller] = []
    for key_id in range(1, 61):
        wallet = f"0x{(key_id % 30) + 1:040x}"
        favourites = tuple(rng.sample(range(len(MODELS)), rng.randint(1, 3)))
        callers.append(
            Caller(
                payer_account=f"credit:wallet:{wallet}",
                api_key_id=key_id,
                strategy=rng.choice(STRATEGIES),
                models=favourites,
                model_weights=(0.7, 0.2, 0.1)[: len(favourites)],
            )
        )
    for index in range(40):
        callers.append(
            Caller(
                payer_account=f"credit:wallet:0x{0xA000 + index:040x}",
                api_key_id=None,
                strategy="balanced",
                models=(rng.randrange(len(MODELS)),),
                model_weights=(1.0,),
            )
        )
    # Zipf-like shares among keys (a few busy apps, a long tail); x402 traffic is 10 % in all.
    key_weights = [1 / rank for rank in range(1, 61)]
    scale = 0.9 / sum(key_weights)
    return callers, [w * scale for w in key_weights] + [0.1 / 40] * 40


def _event_times(rng: random.Random, events: int, days: int) -> list[int]:
    """Sorted unix seconds with a day/night cycle (3x busier in the UTC afternoon than at night)."""
    hours = days * 24
    weights = [2 + math.sin((hour % 24 - 8) / 24 * 2 * math.pi) for hour in range(hours)]
    chosen = rng.choices(range(hours), weights=weights, k=events)
    return sorted(START_UNIX_S + hour * HOUR_S + rng.randrange(HOUR_S) for hour in chosen)


def _records(rng: random.Random, events: int, days: int) -> Iterator[tuple[Any, ...]]:
    callers, weights = _callers(rng)
    picks = rng.choices(callers, weights=weights, k=events)
    for index, (unix_s, caller) in enumerate(zip(_event_times(rng, events, days), picks, strict=True)):
        model_index = rng.choices(caller.models, weights=caller.model_weights)[0]
        if rng.random() < 0.05:
            model_index = MODELS[model_index][4]  # Failed over to the fallback deployment.
        model, provider, median_ms, output_price, _ = MODELS[model_index]
        outcome = rng.choice(ERROR_OUTCOMES) if rng.random() < 0.03 else "completed"
        streamed = rng.random() < 0.4
        latency_ms = max(1, int(rng.lognormvariate(math.log(median_ms), 0.6)))
        ttft_ms = max(1, int(latency_ms * rng.uniform(0.05, 0.4))) if streamed else None
        input_tokens = int(rng.lognormvariate(math.log(600), 1.0))
        output_tokens = int(rng.lognormvariate(math.log(250), 0.8)) if outcome == "completed" else 0
        cached = input_tokens // 2 if rng.random() < 0.2 else 0
        # Input costs a quarter of output per token, as in most price lists.
        cost = input_tokens * output_price // 4 + output_tokens * output_price
        if outcome in ("upstream_failed", "caller_error"):
            cost, ttft_ms = 0, None
        quote = cost + 5_000
        yield (
            f"req_{index:032x}",
            datetime.fromtimestamp(unix_s, UTC),
            caller.payer_account,
            caller.api_key_id,
            outcome,
            model,
            provider,
            caller.strategy,
            "[]",
            int(streamed),
            input_tokens,
            cached,
            0,
            output_tokens,
            0,
            0,
            "{}",
            "bench",
            quote,
            cost,
            0,
            index + 1,
            latency_ms,
            ttft_ms,
        )


async def _load(dsn: str, *, events: int, days: int, seed: int) -> float:
    """COPYs the events in batches; returns the seconds it took."""
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        records = _records(random.Random(seed), events, days)
        while batch := [record for _, record in zip(range(COPY_BATCH), records, strict=False)]:
            await connection.copy_records_to_table("usage_events", records=batch, columns=list(COLUMNS))
        await connection.execute("ANALYZE usage_events")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def _backfill(engine: AsyncEngine) -> tuple[float, int]:
    """Builds the roll-ups with the migration's own backfill; returns (seconds, hour rows)."""
    module = importlib.import_module("proxy.db.migrations.versions.0009_usage_rollups")
    started = time.perf_counter()
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DELETE FROM usage_rollups")
        await connection.run_sync(module.backfill_usage_rollups)
        await connection.exec_driver_sql("ANALYZE usage_rollups")
    elapsed = time.perf_counter() - started
    async with engine.connect() as connection:
        rows = (
            await connection.exec_driver_sql("SELECT count(*) FROM usage_rollups WHERE period_s = 3600")
        ).scalar_one()
    return elapsed, int(rows)


_DIMENSION_SQL = {"model": "model_id", "provider": "provider", "strategy": "strategy", "key": "api_key_id"}


def _baseline_sql(query: AnalyticsQuery, scope: AnalyticsScope) -> tuple[str, list[Any]]:
    """The same answer from the raw events: one scan, sums, exact nearest-rank percentiles."""
    bucket_s = query.bucket_s
    bucket = f"(CAST(FLOOR(EXTRACT(EPOCH FROM created_at)) AS BIGINT) / {bucket_s}) * {bucket_s}"
    groups = [f"{_DIMENSION_SQL[name]} AS g_{name}" for name in query.group_by]
    percentiles = [
        f"percentile_disc({q}) WITHIN GROUP (ORDER BY {column}) AS {column}_{label}"
        for column in ("latency_ms", "time_to_first_token_ms")
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    ]
    start, end = query.range_unix_s
    where = ["created_at >= to_timestamp($1)", "created_at < to_timestamp($2)"]
    arguments: list[Any] = [start, end]
    for column, value in (
        ("model_id", query.model),
        ("provider", query.provider),
        ("api_key_id", query.api_key_id),
    ):
        if value is not None:
            arguments.append(value)
            where.append(f"{column} = ${len(arguments)}")
    if not scope.everything:
        arguments.append(sorted(scope.payer_accounts))
        where.append(f"payer_account = ANY(${len(arguments)})")
    positions = ", ".join(str(position) for position in range(1, len(groups) + 2))
    sql = (
        f"SELECT {bucket} AS bucket_start, {', '.join([*groups, ''])}"
        "count(*) AS requests, sum(CASE WHEN outcome = 'completed' THEN 0 ELSE 1 END) AS errors, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        f"sum(cost_nano_usd) AS spend_nano_usd, {', '.join(percentiles)} "
        f"FROM usage_events WHERE {' AND '.join(where)} GROUP BY {positions} ORDER BY {positions}"
    )
    return sql, arguments


def _same_answer(query: AnalyticsQuery, report: AnalyticsReport, baseline: list[asyncpg.Record]) -> None:
    assert len(report["data"]) == len(baseline), (len(report["data"]), len(baseline))
    # Matched by (bucket, group): the roll-ups store "no key" as 0 and sort it first, the raw events as NULL.
    raw_rows = {
        (raw["bucket_start"], *(raw[f"g_{name}"] or None for name in query.group_by)): raw for raw in baseline
    }
    for row in report["data"]:
        raw = raw_rows[(row["bucket_start"], *(row["group"][name] for name in query.group_by))]
        for name in ("requests", "errors", "input_tokens", "output_tokens", "spend_nano_usd"):
            assert row[name] == raw[name], (name, row[name], raw[name])
        for label in ("p50", "p95", "p99"):
            exact = raw[f"latency_ms_{label}"]
            assert latency_bucket(row["latency_ms"][label]) == latency_bucket(exact)
            exact_ttft = raw[f"time_to_first_token_ms_{label}"]
            if exact_ttft is None:
                assert row["ttft_ms"] is None
            else:
                ttft = row["ttft_ms"]
                assert ttft is not None
                assert latency_bucket(ttft[label]) == latency_bucket(exact_ttft)


async def _time_rollups(engine: AsyncEngine, query: AnalyticsQuery, scope: AnalyticsScope) -> float:
    started = time.perf_counter()
    report = await run_analytics(engine, query, scope)
    json.dumps(report)  # What the handler renders.
    return (time.perf_counter() - started) * 1000


async def _compare(
    engine: AsyncEngine, dsn: str, name: str, query: AnalyticsQuery, scope: AnalyticsScope, repeats: int
) -> tuple[float, float]:
    report = await run_analytics(engine, query, scope)
    sql, arguments = _baseline_sql(query, scope)
    connection = await asyncpg.connect(dsn)
    try:
        _same_answer(query, report, await connection.fetch(sql, *arguments))
        rollup_ms = statistics.median([await _time_rollups(engine, query, scope) for _ in range(repeats)])
        baseline_ms = []
        for _ in range(repeats):
            started = time.perf_counter()
            await connection.fetch(sql, *arguments)
            baseline_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    scan_ms = statistics.median(baseline_ms)
    print(
        f"  {name:<44} rows {len(report['data']):>5}   roll-ups {rollup_ms:8.1f} ms   "
        f"raw scan {scan_ms:8.1f} ms   x{scan_ms / rollup_ms:6.1f} faster"
    )
    return rollup_ms, scan_ms


async def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with fresh_database(args.pg_dsn, Path(directory)) as url:
            print(machine_description(url))
            engine = create_async_engine(url, pool_size=2)
            try:
                await migrate(engine)
                await migrate_proxy(engine)
                dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
                load_s = await _load(dsn, events=args.events, days=args.days, seed=args.seed)
                backfill_s, rollup_rows = await _backfill(engine)
                print(
                    f"{args.events:,} usage events over {args.days} days loaded by COPY in {load_s:.1f} s; "
                    f"{rollup_rows:,} hour roll-up rows (and their day rows) built by the migration's "
                    f"backfill in {backfill_s:.1f} s ({args.events / rollup_rows:.1f} events per hour row)"
                )
                await _queries(engine, dsn, args)
            finally:
                await engine.dispose()


async def _queries(engine: AsyncEngine, dsn: str, args: argparse.Namespace) -> None:
    end = START_UNIX_S + args.days * DAY_S

    def month(
        bucket: str, *group_by: str, provider: str | None = None, days: int = args.days
    ) -> AnalyticsQuery:
        return AnalyticsQuery.model_validate(
            {
                "start_unix_s": end - days * DAY_S,
                "end_unix_s": end,
                "bucket": bucket,
                "group_by": group_by,
                "provider": provider,
            }
        )

    everything = AnalyticsScope(everything=True)
    # Key 1 is the busiest (the Zipf-like shares): the wallet it belongs to, as that key would see it.
    busiest = AnalyticsScope(payer_accounts=frozenset({f"credit:wallet:0x{2:040x}"}))
    shapes: list[tuple[str, AnalyticsQuery, AnalyticsScope]] = [
        ("operator: day x model", month("day", "model"), everything),
        ("operator: day x provider,strategy", month("day", "provider", "strategy"), everything),
        ("operator: day x key", month("day", "key"), everything),
        ("operator: hour, no grouping", month("hour"), everything),
        ("operator: hour x model", month("hour", "model"), everything),
        ("operator: hour x model, last 7 days", month("hour", "model", days=7), everything),
        ("operator: hour x model, last day", month("hour", "model", days=1), everything),
        ("operator: day x model, provider=openai", month("day", "model", provider="openai"), everything),
        ("busiest key's wallet: day x model", month("day", "model"), busiest),
    ]
    print(f"median of {args.repeats} runs per query (the answers of both sides are checked equal first):")
    results = [await _compare(engine, dsn, name, query, scope, args.repeats) for name, query, scope in shapes]
    slowest_ms = max(rollup_ms for rollup_ms, _ in results)
    ratios = [scan_ms / rollup_ms for rollup_ms, scan_ms in results]
    print(
        f"slowest roll-up query {slowest_ms:.1f} ms (goal <= {GOAL_MS:.0f} ms: "
        f"{'met' if slowest_ms <= GOAL_MS else 'NOT met'}); roll-ups {min(ratios):.1f}x to "
        f"{max(ratios):.1f}x faster than scanning the raw events"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--pg-dsn", default="postgresql://root@127.0.0.1:5432/test")
    args = parser.parse_args()
    assert args.events > 0
    assert 1 <= args.days <= 31
    return bench_main(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
