"""Goal: POST /v1/route/preview shows what `auto` would do, free: no upstream call, no hold, no charge, no
payment read; it is rate-limited per key or IP; and a real `auto` request stores the same explanation in
its usage event.

Method: the running router (SQLite, simulated providers, Anvil). Snapshots of the chain height, ledger
entries and holds, settlement intents and simulator calls before and after the previews; a funded key's
balance and holds; a router started with a two-preview bucket (refilled once an hour, so it cannot refill
during the test); then one paid `auto` completion with the same body as a preview.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.api.support import credit_balance, funded_key, holds_of, resolved_hold
from tests.fixtures.app import RouterWith, RunningRouter

TRIVIAL = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 300}
DEMANDING = {
    "model": "auto",
    "messages": [
        {
            "role": "user",
            "content": "Prove that there are infinitely many primes of the form 4k+3, with full rigor, and "
            "analyse where the argument fails for primes of the form 4k+1.",
        }
    ],
    "max_tokens": 300,
}


async def preview(router: RunningRouter, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await router.client.post("/v1/route/preview", json=body, headers=headers)
    assert response.status == 200, await response.text()
    document: dict[str, Any] = await response.json()
    return document


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_preview_explains_the_route_without_calling_holding_or_charging(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[4], amount_usd="1")
    balance_before = await credit_balance(router, router.payers[4])
    holds_before = await holds_of(router, router.payers[4])
    before = await router.snapshot()

    trivial = await preview(router, TRIVIAL)
    demanding = await preview(router, DEMANDING, Authorization=f"Bearer {key}")
    # A payment header is not read: nothing is verified, settled or credited.
    with_payment = await preview(router, TRIVIAL, **{"PAYMENT-SIGNATURE": "bm90IGEgcGF5bWVudA=="})

    assert await router.snapshot() == before
    assert await credit_balance(router, router.payers[4]) == balance_before
    assert await holds_of(router, router.payers[4]) == holds_before
    assert with_payment == trivial

    for document in (trivial, demanding):
        assert document["object"] == "route.preview"
        assert document["model"] == "auto"
        assert 0.0 <= document["difficulty"] <= 1.0
        candidates = document["candidates"]
        assert [c["rank"] for c in candidates] == list(range(1, len(candidates) + 1))
        assert all(c["output_price_nano_usd_per_mtok"] >= 0 and c["quote_nano_usd"] > 0 for c in candidates)
        assert document["quote"]["amount_nano_usd"] == max(c["quote_nano_usd"] for c in candidates)
        assert document["quote"]["amount_nano_usd"] == document["hold_nano_usd"]
        assert document["quote"]["catalog_version"]
    assert trivial["difficulty"] < 0.5 < demanding["difficulty"]
    assert trivial["quality_needed"] < demanding["quality_needed"]
    first_trivial, first_demanding = trivial["candidates"][0], demanding["candidates"][0]
    assert first_demanding["quality"] >= demanding["quality_needed"]
    assert (
        first_demanding["output_price_nano_usd_per_mtok"]
        >= 5 * first_trivial["output_price_nano_usd_per_mtok"]
    )
    assert all(c["rated"] for c in trivial["candidates"])

    unrated = await preview(
        router, {**TRIVIAL, "route": {"strategy": "cost"}}, **{"X-MegaRouter-Allow-Unrated": "true"}
    )
    assert unrated["allow_unrated"] is True
    assert not unrated["candidates"][0]["rated"]
    assert unrated["candidates"][0]["quality"] is None
    bad = await router.client.post(
        "/v1/route/preview", json=TRIVIAL, headers={"X-MegaRouter-Allow-Unrated": "maybe"}
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "invalid_route"
    wrong_key = await router.client.post(
        "/v1/route/preview", json=TRIVIAL, headers={"Authorization": "Bearer mr_live_nope"}
    )
    assert wrong_key.status == 401
    assert await router.snapshot() == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_previews_are_rate_limited_per_key_or_client(router_with: RouterWith) -> None:
    async with router_with(route_preview={"burst": 2, "refill_interval_s": 3600.0}) as router:
        key = await funded_key(router, router.payers[5], amount_usd="1")
        for _ in range(2):
            await preview(router, TRIVIAL)
        refused = await router.client.post("/v1/route/preview", json=TRIVIAL)
        assert refused.status == 429
        assert (await refused.json())["error"]["code"] == "too_many_previews"
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        # A key has its own bucket, whatever the address it calls from.
        await preview(router, TRIVIAL, Authorization=f"Bearer {key}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_paid_auto_request_stores_the_previewed_explanation(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[6], amount_usd="1")
    headers = {"Authorization": f"Bearer {key}"}
    shown = await preview(router, TRIVIAL, **headers)
    response = await router.client.post("/v1/chat/completions", json=TRIVIAL, headers=headers)
    assert response.status == 200, await response.text()
    _hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert event.route_explanation is not None
    shown.pop("object")
    shown.pop("quote")
    assert event.route_explanation == shown
    assert event.model_id == shown["candidates"][0]["model"]
    assert event.quote_nano_usd == shown["hold_nano_usd"]
    listed = await router.client.get(f"/v1/usage/{event.request_id}", headers=headers)
    assert (await listed.json())["data"][0]["route_explanation"] == shown
