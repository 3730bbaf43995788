"""Every charge can be explained afterwards: the caller reads its usage events through the API, the operator
through `megarouter usage`, and the event's tokens × prices reproduce the captured cost exactly.

Method: one keyed completion through the running router (SQLite), then GET /v1/usage, GET /v1/usage/{id},
another wallet's key (which must not see it), and the CLI on the same database.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from proxy.cli import main
from proxy.money import TOKENS_PER_MTOK, div_ceil
from tests.e2e.api.support import funded_key
from tests.fixtures.app import RunningRouter


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_usage_events_explain_the_charge(
    router: RunningRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await funded_key(router, router.payers[2], amount_usd="1")
    other_key = await funded_key(router, router.payers[3], amount_usd="1")
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Explain my bill"}],
        "max_tokens": 40,
    }
    response = await router.client.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 200
    request_id = response.headers["X-Request-Id"]
    cost_nano_usd = int(response.headers["X-MegaRouter-Cost-Nano-USD"])

    listed = await router.client.get("/v1/usage?limit=5", headers={"Authorization": f"Bearer {key}"})
    assert listed.status == 200
    events = (await listed.json())["data"]
    assert [event["request_id"] for event in events] == [request_id]
    event = events[0]
    prices = event["prices_nano_usd_per_mtok"]
    uncached = event["input_tokens"] - event["cached_input_tokens"] - event["cache_write_input_tokens"]
    recomputed = div_ceil(
        uncached * prices["input"]
        + event["cached_input_tokens"] * prices["cached_input"]
        + event["cache_write_input_tokens"] * prices["cache_write_input"]
        + event["output_tokens"] * prices["output"],
        TOKENS_PER_MTOK,
    )
    assert event["cost_nano_usd"] == recomputed == cost_nano_usd
    assert event["catalog_version"]
    assert event["attempts"][-1]["outcome"] == "ok"

    one = await router.client.get(f"/v1/usage/{request_id}", headers={"Authorization": f"Bearer {key}"})
    assert one.status == 200
    hidden = await router.client.get(
        f"/v1/usage/{request_id}", headers={"Authorization": f"Bearer {other_key}"}
    )
    assert hidden.status == 404
    assert (await router.client.get("/v1/usage")).status == 401

    capsys.readouterr()
    # The CLI runs its own event loop, as it does from a shell: give it a thread.
    cli = ["usage", request_id, "--json", "--database-url", router.settings.database_url]
    assert await asyncio.to_thread(main, cli) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["cost_nano_usd"] == cost_nano_usd
    unknown = ["usage", "req_unknown", "--database-url", router.settings.database_url]
    assert await asyncio.to_thread(main, unknown) == 1
