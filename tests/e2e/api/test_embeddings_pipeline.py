"""Embeddings go through the same pipeline as chat: breaker admission, failover to another deployment of
the same model, caller errors never retried, the same routing headers and one usage event per request.

Goal: issue 8 item 2: the embeddings handler had its own reduced copy of the pipeline (one deployment, no
breaker check, no deadline, no failover). Method: the real app with the simulated providers and a catalog
override adding a second deployment of `text-embedding-3-small` (on Together, under another upstream name
so a fault on one does not touch the other); faults injected per upstream model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.api.app_keys import HEALTH_TRACKER
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import credit_balance, funded_key, resolved_hold
from tests.fixtures.app import RouterWith, RunningRouter

MODEL_ID = "openai/text-embedding-3-small"
UPSTREAM = "text-embedding-3-small"
SECOND_ID = "together/openai/text-embedding-3-small"
SECOND_UPSTREAM = "openai/text-embedding-3-small"
OVERRIDES = f"""
[[models]]
id = "{SECOND_ID}"
input_usd_per_mtok = "0.03"
output_usd_per_mtok = "0"
context_window_tokens = 8191
max_output_tokens = 1
capabilities = {{ embeddings = true }}
"""
BODY = {"model": MODEL_ID, "input": ["routers and ledgers", "holds and captures"]}


@pytest.fixture
async def router(router_with: RouterWith, tmp_path: Path) -> AsyncIterator[RunningRouter]:
    overrides = tmp_path / "catalog.toml"
    overrides.write_text(OVERRIDES)
    async with router_with(catalog_overrides_path=overrides) as running:
        yield running


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_failing_deployment_fails_over_to_another_of_the_same_model(router: RunningRouter) -> None:
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    router.simulator["primary"].set_fault(UPSTREAM, error_count=1, error_status=503)
    response = await router.client.post("/v1/embeddings", json=BODY, headers=bearer(key))
    assert response.status == 200, await response.text()
    assert len((await response.json())["data"]) == 2
    assert response.headers["X-MegaRouter-Model"] == SECOND_ID
    assert response.headers["X-MegaRouter-Provider"] == "together"
    first, second = response.headers["X-MegaRouter-Attempts"].split(", ")
    assert first.startswith(f"{MODEL_ID}=")
    assert first != f"{MODEL_ID}=ok"
    assert second == f"{SECOND_ID}=ok"
    assert "X-MegaRouter-Strategy" not in response.headers

    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert (event.outcome, event.model_id) == ("completed", SECOND_ID)
    assert [attempt.outcome == "ok" for attempt in event.attempts] == [False, True]
    assert hold.state == "captured"
    assert hold.captured_amount == event.cost_nano_usd == int(response.headers["X-MegaRouter-Cost-Nano-USD"])
    assert hold.amount == int(response.headers["X-MegaRouter-Quote-Nano-USD"])
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_caller_error_is_not_retried_and_costs_nothing(router: RunningRouter) -> None:
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    router.simulator["primary"].set_fault(UPSTREAM, error_count=1, error_status=400)
    response = await router.client.post("/v1/embeddings", json=BODY, headers=bearer(key))
    assert response.status == 400, await response.text()
    assert response.headers["X-MegaRouter-Attempts"].split(", ") == [f"{MODEL_ID}=bad_request"]
    assert SECOND_UPSTREAM not in router.simulator["primary"].stats()

    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert (event.outcome, event.cost_nano_usd, hold.state) == ("upstream_failed", 0, "voided")
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_open_breaker_is_skipped_without_a_call(router: RunningRouter) -> None:
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    tracker = router.app[HEALTH_TRACKER]
    while await tracker.try_acquire(MODEL_ID):
        await tracker.record_failure(MODEL_ID, kind="server_error", retry_after_s=None)
    response = await router.client.post("/v1/embeddings", json=BODY, headers=bearer(key))
    assert response.status == 200, await response.text()
    assert response.headers["X-MegaRouter-Attempts"] == f"{MODEL_ID}=breaker_open, {SECOND_ID}=ok"
    assert UPSTREAM not in router.simulator["primary"].stats()
