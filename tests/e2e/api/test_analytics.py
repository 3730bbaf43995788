"""The analytics API answers from roll-ups that equal a direct aggregate of the raw usage events.

Method: a mixed set of real requests through the running router (SQLite and PostgreSQL): two wallets' keys,
two models, plain and streamed, a request that fails on every upstream (voided, an error), and an x402-paid
request without a key. Then (1) every roll-up row equals the aggregate of its raw events computed here in
Python, (2) the migration's backfill rebuilds exactly the same rows from the events, (3) GET /v1/analytics
as the operator and as each key: totals, visibility (a key never sees another wallet's rows), and the
OpenAI-style 400s for bad parameters.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete

from proxy.api.app_keys import DB_ENGINE
from proxy.db.tables import usage_rollups
from proxy.devnet.simulator import ANY_MODEL
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import funded_key, post_paid_with_x402
from tests.fixtures.app import RouterWith, RunningRouter
from tests.fixtures.rollups import expected_rollups, raw_usage_events, stored_rollups

ADMIN_TOKEN = "operator-admin-token-for-tests"
OTHER_MODEL = "openai/gpt-4.1-nano"
BACKFILL = importlib.import_module("proxy.db.migrations.versions.0009_usage_rollups")


@pytest.fixture
async def analytics_router(router_with: RouterWith) -> AsyncIterator[RunningRouter]:
    async with router_with(admin_token=ADMIN_TOKEN) as running:
        yield running


def _body(model: str, *, stream: bool = False) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Tell me about the weather."}],
        "max_tokens": 24,
        "stream": stream,
    }


async def _chat(router: RunningRouter, key: str, body: dict[str, Any], *, status: int = 200) -> None:
    response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
    await response.read()
    assert response.status == status, await response.text()


async def _mixed_requests(router: RunningRouter) -> tuple[str, str]:
    key_a = await funded_key(router, router.payers[2], amount_usd="1")
    key_b = await funded_key(router, router.payers[3], amount_usd="1")
    await _chat(router, key_a, _body("openai/gpt-4o-mini"))
    await _chat(router, key_a, _body("openai/gpt-4o-mini", stream=True))
    await _chat(router, key_a, _body(OTHER_MODEL))
    await _chat(router, key_b, _body("openai/gpt-4o-mini"))
    for name in router.simulator.servers:
        router.simulator[name].set_fault(ANY_MODEL, error_rate=1.0, error_status=500)
    await _chat(router, key_b, _body(OTHER_MODEL), status=503)
    for name in router.simulator.servers:
        router.simulator[name].clear_fault(ANY_MODEL)
    response, _ = await post_paid_with_x402(
        router, "/v1/chat/completions", _body("openai/gpt-4o-mini"), payer=router.payers[4]
    )
    assert response.status == 200, await response.text()
    return key_a, key_b


async def _analytics(router: RunningRouter, token: str | None, **params: str) -> tuple[int, Any]:
    headers = bearer(token) if token else None
    response = await router.client.get("/v1/analytics", params=params, headers=headers)
    return response.status, await response.json()


def _range() -> dict[str, str]:
    now_s = int(time.time())
    return {"start": str(now_s - 86_400), "end": str(now_s + 86_400)}


async def test_rollups_equal_the_raw_events_and_the_api_answers_from_them(
    analytics_router: RunningRouter,
) -> None:
    router = analytics_router
    key_a, key_b = await _mixed_requests(router)
    engine = router.app[DB_ENGINE]
    events = await raw_usage_events(engine)
    assert len(events) == 6
    assert {event["outcome"] for event in events} == {"completed", "upstream_failed"}
    assert any(event["time_to_first_token_ms"] is not None for event in events)
    expected = expected_rollups(events)
    assert await stored_rollups(engine) == expected

    # The migration's backfill rebuilds the same rows from the raw events alone.
    async with engine.begin() as connection:
        await connection.execute(delete(usage_rollups))
        await connection.run_sync(BACKFILL.backfill_usage_rollups)
    assert await stored_rollups(engine) == expected

    status, report = await _analytics(router, ADMIN_TOKEN, bucket="day", group_by="model,key", **_range())
    assert status == 200, report
    assert report["object"] == "analytics"
    assert report["group_by"] == ["model", "key"]
    assert report["end"] - report["start"] in (2 * 86_400, 3 * 86_400)
    assert sum(row["requests"] for row in report["data"]) == 6
    assert sum(row["errors"] for row in report["data"]) == 1
    assert sum(row["spend_nano_usd"] for row in report["data"]) == sum(e["cost_nano_usd"] for e in events)
    assert sum(row["output_tokens"] for row in report["data"]) == sum(e["output_tokens"] for e in events)
    for row in report["data"]:
        assert row["bucket_start"] % 86_400 == 0
        assert set(row["group"]) == {"model", "key"}
        assert row["error_rate"] == row["errors"] / row["requests"]
        whole, fraction = row["spend_usd"].split(".")
        assert int(whole) * 10**9 + int(fraction) == row["spend_nano_usd"]
        latency = row["latency_ms"]
        assert latency["p50"] <= latency["p95"] <= latency["p99"]
    # The x402 request has no key: its group says null.
    assert any(row["group"]["key"] is None and row["errors"] == 0 for row in report["data"])

    await _check_visibility(router, key_a, key_b, events)


async def _check_visibility(
    router: RunningRouter, key_a: str, key_b: str, events: list[dict[str, Any]]
) -> None:
    wallet_a = router.payers[2].address.lower()
    status, own = await _analytics(router, key_a, group_by="wallet,model", **_range())
    assert status == 200, own
    assert {row["group"]["wallet"] for row in own["data"]} == {wallet_a}
    assert sum(row["requests"] for row in own["data"]) == 3
    streamed = [event for event in events if event["time_to_first_token_ms"] is not None]
    assert any(row["ttft_ms"] is not None for row in own["data"])
    key_a_id = next(event["api_key_id"] for event in streamed)
    # Key B asks for key A's rows by id: it sees nothing, not even that they exist.
    status, other = await _analytics(router, key_b, key=str(key_a_id), **_range())
    assert status == 200
    assert other["data"] == []
    status, mine = await _analytics(router, key_b, group_by="model", **_range())
    assert sum(row["requests"] for row in mine["data"]) == 2
    assert sum(row["errors"] for row in mine["data"]) == 1
    status, unauthenticated = await _analytics(router, None, **_range())
    assert status == 401
    assert unauthenticated["error"]["code"] == "missing_api_key"
    status, wrong_admin = await _analytics(router, "not-the-admin-token", **_range())
    assert status == 401
    assert wrong_admin["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start"),
        ({"start": "100"}, "end"),
        ({"start": "200", "end": "100"}, None),
        ({"start": "-1", "end": "100"}, "start"),
        ({"start": "1e3", "end": "100000"}, "start"),
        ({"start": "0", "end": str(40 * 86_400)}, None),
        ({"start": "0", "end": str(400 * 86_400), "bucket": "day"}, None),
        ({"start": "0", "end": "3600", "bucket": "week"}, "bucket"),
        ({"start": "0", "end": "3600", "group_by": "colour"}, "group_by"),
        ({"start": "0", "end": "3600", "group_by": "model,model"}, "group_by"),
        ({"start": "0", "end": "3600", "group_by": "model,provider,key,wallet"}, "group_by"),
        ({"start": "0", "end": "3600", "key": "abc"}, "key"),
        ({"start": "0", "end": "3600", "key": "0"}, "key"),
        ({"start": "0", "end": "3600", "model": ""}, "model"),
        ({"start": "0", "end": "3600", "colour": "red"}, "colour"),
    ],
)
async def test_bad_parameters_are_openai_style_400s(
    analytics_router: RunningRouter, params: dict[str, str], param: str | None
) -> None:
    status, body = await _analytics(analytics_router, ADMIN_TOKEN, **params)
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    assert body["error"]["message"]
