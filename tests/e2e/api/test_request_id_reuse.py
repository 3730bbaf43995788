"""A caller's X-Request-Id never names money: requests repeating one are each held, served and charged.

The request id keys the ledger's hold, capture and void (`<id>:hold`, ...). It used to be taken from a
well-formed inbound X-Request-Id, so a repeated id replayed the first request's captured hold: the repeat
was served for free (chat, stream, embeddings), and a repeat of another cost failed with a 500 after the
upstream had answered. Now the server mints every id; the caller's only correlates logs.

Method: a funded key sends three requests with one fixed X-Request-Id (chat, streamed chat, embeddings,
and a chat whose repeats differ in cost); each must answer 200 under its own server-minted X-Request-Id,
take its own hold, capture its own cost off the credit, write its own usage event, and leave the ledger
clean.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger import check_ledger
from proxy.api.app_keys import DB_ENGINE
from proxy.request_ids import is_server_request_id
from tests.e2e.api.support import credit_balance, funded_key, holds_of, resolved_hold
from tests.fixtures.app import RunningRouter

CLIENT_REQUEST_ID = "client-chosen-request-id-0001"
CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say something about ledgers."}],
    "max_tokens": 40,
}
EMBEDDINGS_BODY: dict[str, Any] = {"model": "openai/text-embedding-3-small", "input": ["one", "two"]}
REPEATS = 3


async def _post_repeating_id(router: RunningRouter, key: str, path: str, body: dict[str, Any]) -> str:
    """One request carrying the fixed client id; returns the server's id for it after it is resolved."""
    headers = {"Authorization": f"Bearer {key}", "X-Request-Id": CLIENT_REQUEST_ID}
    response = await router.client.post(path, json=body, headers=headers)
    assert response.status == 200, await response.text()
    await response.read()
    request_id = response.headers["X-Request-Id"]
    assert request_id != CLIENT_REQUEST_ID
    assert is_server_request_id(request_id)
    return request_id


async def _assert_each_charged(router: RunningRouter, request_ids: list[str], posted_before: int) -> None:
    """Every request took its own hold and captured its own cost; the credit fell by the sum."""
    payer = router.payers[5]
    # One hold per request (a replayed id used to hand every repeat the first request's captured hold).
    assert len(await holds_of(router, payer)) == len(request_ids)
    assert len(set(request_ids)) == len(request_ids)
    costs = []
    for request_id in request_ids:
        hold, event = await resolved_hold(router, request_id)
        assert event.outcome == "completed"
        assert hold.state == "captured"
        assert hold.captured_amount == event.cost_nano_usd > 0
        assert hold.metadata["request_id"] == request_id
        costs.append(event.cost_nano_usd)
    holds = await holds_of(router, payer)
    assert sorted(str(hold.metadata["request_id"]) for hold in holds) == sorted(request_ids)
    balance = await credit_balance(router, payer)
    assert balance.posted == posted_before - sum(costs)
    assert balance.pending == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def _charged_repeats(router: RunningRouter, path: str, bodies: list[dict[str, Any]]) -> None:
    key = await funded_key(router, router.payers[5], amount_usd="1")
    posted_before = (await credit_balance(router, router.payers[5])).posted
    request_ids = [await _post_repeating_id(router, key, path, body) for body in bodies]
    await _assert_each_charged(router, request_ids, posted_before)


async def test_chat_repeating_a_request_id_is_charged_each_time(router: RunningRouter) -> None:
    await _charged_repeats(router, "/v1/chat/completions", [CHAT_BODY] * REPEATS)


async def test_stream_repeating_a_request_id_is_charged_each_time(router: RunningRouter) -> None:
    body = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}
    await _charged_repeats(router, "/v1/chat/completions", [body] * REPEATS)


async def test_embeddings_repeating_a_request_id_are_charged_each_time(router: RunningRouter) -> None:
    await _charged_repeats(router, "/v1/embeddings", [EMBEDDINGS_BODY] * REPEATS)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_repeat_of_another_cost_is_served_and_charged(router: RunningRouter) -> None:
    """Used to be a 500 after the upstream answered: the replayed hold's key met another amount."""
    bodies = [{**CHAT_BODY, "max_tokens": max_tokens} for max_tokens in (40, 200, 7)]
    await _charged_repeats(router, "/v1/chat/completions", bodies)
