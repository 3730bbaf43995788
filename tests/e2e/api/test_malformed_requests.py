"""Malformed requests get OpenAI-style 4xx errors and change nothing: no hold, ledger row or upstream call.

Method: raw HTTP against the running router (SQLite), comparing the router's snapshot before and after;
with no key, with a funded key (credit unchanged, no usage event) and with an x402 payment that settles
before an adapter refuses the request (the answer carries PAYMENT-RESPONSE, the payment stays as credit).
Issue 9 items 2, 5 and 8: each case marked so was a 500 (or was accepted) before its fix.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER, USAGE_LOG
from proxy.serving.payer import PAYMENT_KEPT_AS_CREDIT
from tests.e2e.accounts.helpers import obtain_key
from tests.e2e.api.support import funded_key
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter

GOOD: dict[str, Any] = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
EMBED: dict[str, Any] = {"model": "openai/text-embedding-3-small", "input": "hi"}
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-latest"
AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def deep(depth: int) -> str:
    """JSON text of `depth` nested arrays (built as text: json.dumps itself would recurse that deep)."""
    return "[" * depth + "]" * depth


def raw_body(document: dict[str, Any], **deep_fields: int) -> dict[str, Any]:
    """Request kwargs for `document` with each named field replaced by that many nested arrays."""
    text = json.dumps(document)
    for name, depth in deep_fields.items():
        text = text.replace(f'"{name}": "DEEP"', f'"{name}": {deep(depth)}')
    return {"data": text.encode(), "headers": {"Content-Type": "application/json"}}


# Requests whose fault is the caller's, each a 4xx before anything is held or paid: (path, kwargs, code).
CALLER_FAULTS = [
    pytest.param(
        "/v1/chat/completions",
        raw_body({**GOOD, "unknown": "DEEP"}, unknown=10_000),
        "invalid_json",
        id="deep-unknown-field",
    ),
    pytest.param(
        "/v1/chat/completions",
        raw_body(
            {**GOOD, "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "x": "DEEP"}]}]},
            x=5_000,
        ),
        "invalid_json",
        id="deep-content-part",
    ),
    pytest.param(
        "/v1/chat/completions",
        raw_body(
            {**GOOD, "tools": [{"type": "function", "function": {"name": "f", "parameters": "DEEP"}}]},
            parameters=5_000,
        ),
        "invalid_json",
        id="deep-tool-schema",
    ),
    pytest.param(
        "/v1/chat/completions",
        {"json": {**GOOD, "messages": [{"role": "user", "content": "a\ud800b"}]}},
        "invalid_json",
        id="unpaired-surrogate-content",
    ),
    pytest.param(
        "/v1/chat/completions",
        {"json": {**GOOD, "messages": [{"role": "user", "content": "hi", "name": "\udc00"}]}},
        "invalid_json",
        id="unpaired-surrogate-name",
    ),
    pytest.param(
        "/v1/chat/completions",
        {"json": {**GOOD, "route": {"max_price": {"prompt": "1e999999"}}}},
        "invalid_route",
        id="max-price-decimal-overflow",
    ),
    pytest.param(
        "/v1/chat/completions",
        {"json": {**GOOD, "model": ANTHROPIC_MODEL, "messages": [{"role": "user", "content": [AUDIO_PART]}]}},
        "no_route_candidate",
        id="audio-to-anthropic",
    ),
    pytest.param(
        "/v1/chat/completions", {"json": {**GOOD, "max_tokens": "10"}}, "invalid_value", id="max-tokens-str"
    ),
    pytest.param(
        "/v1/chat/completions", {"json": {**GOOD, "max_tokens": True}}, "invalid_value", id="max-tokens-bool"
    ),
    pytest.param(
        "/v1/chat/completions", {"json": {**GOOD, "stream": "yes"}}, "invalid_value", id="stream-str"
    ),
    pytest.param(
        "/v1/chat/completions", {"json": {**GOOD, "seed": 2**64}}, "invalid_value", id="seed-over-int64"
    ),
    pytest.param(
        "/v1/chat/completions",
        {
            "data": json.dumps(GOOD).replace("}]}", '}],"temperature":NaN}').encode(),
        },
        "invalid_json",
        id="nan",
    ),
    pytest.param(
        "/v1/embeddings", {"json": {**EMBED, "input": ["ok", "\ud800"]}}, "invalid_json", id="embed-surrogate"
    ),
    pytest.param(
        "/v1/embeddings", raw_body({**EMBED, "input": "DEEP"}, input=5_000), "invalid_json", id="embed-deep"
    ),
    pytest.param(
        "/v1/embeddings",
        {"json": {**EMBED, "dimensions": 10**9}},
        "invalid_value",
        id="embed-dimensions-huge",
    ),
    pytest.param(
        "/v1/embeddings", {"json": {**EMBED, "dimensions": "8"}}, "invalid_value", id="embed-dimensions-str"
    ),
    pytest.param(
        "/v1/embeddings", {"json": {**EMBED, "input": [True, 1]}}, "invalid_value", id="embed-bool-token"
    ),
]


async def _error(router: RunningRouter, **request: Any) -> tuple[int, dict[str, Any]]:
    response = await router.client.post("/v1/chat/completions", **request)
    body: dict[str, Any] = await response.json()
    return response.status, body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "param"),
    [
        pytest.param(
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_json",
            None,
            id="invalid-json",
        ),
        pytest.param({"json": ["not", "an", "object"]}, 400, "invalid_json", None, id="not-an-object"),
        pytest.param(
            {"json": {**GOOD, "temperature": "hot"}}, 400, "invalid_value", "temperature", id="bad-type"
        ),
        pytest.param({"json": {**GOOD, "messages": []}}, 400, "invalid_value", "messages", id="no-messages"),
        pytest.param(
            {"json": {**GOOD, "model": "nobody/no-such-model"}},
            404,
            "model_not_found",
            "model",
            id="unknown-model",
        ),
        pytest.param(
            {"json": {**GOOD, "route": {"strategy": "fastest"}}},
            400,
            "invalid_route",
            "route.strategy",
            id="bad-route",
        ),
        pytest.param(
            {"json": {**GOOD, "messages": [{"role": "user", "content": "x" * 600_000}]}},
            400,
            "context_length_exceeded",
            "messages",
            id="over-context-window",
        ),
        pytest.param(
            # A stream, not raw bytes: aiohttp's client refuses to send megabytes of raw bytes in one piece.
            {
                "data": io.BytesIO(b"{" + b" " * (5 * 1024 * 1024) + b"}"),
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "request_too_large",
            None,
            id="oversized-body",
        ),
    ],
)
async def test_malformed_request_is_refused_and_changes_nothing(
    router: RunningRouter, request_kwargs: dict[str, Any], status: int, code: str, param: str | None
) -> None:
    before = await router.snapshot()
    got_status, body = await _error(router, **request_kwargs)
    assert got_status == status, body
    assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    assert {"message", "type", "code", "param"} <= set(body["error"])
    assert await router.snapshot() == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("path", "request_kwargs", "code"), CALLER_FAULTS)
async def test_caller_fault_is_a_4xx_without_a_key(
    router: RunningRouter, path: str, request_kwargs: dict[str, Any], code: str
) -> None:
    before = await router.snapshot()
    response = await router.client.post(path, **request_kwargs)
    body = await response.json()
    assert response.status == 400, body
    assert body["error"]["code"] == code, body
    assert body["error"]["type"] == "invalid_request_error"
    assert await router.snapshot() == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_caller_faults_with_a_key_hold_and_charge_nothing(router: RunningRouter) -> None:
    payer = router.payers[5]
    key = await funded_key(router, payer, amount_usd="1")
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    credit_before = await ledger.balance(credit_account)
    for case in CALLER_FAULTS:
        path, request_kwargs, code = case.values
        assert isinstance(path, str)
        assert isinstance(request_kwargs, dict)
        headers = {**request_kwargs.get("headers", {}), "Authorization": f"Bearer {key}"}
        before = await router.snapshot()
        response = await router.client.post(path, **{**request_kwargs, "headers": headers})
        body = await response.json()
        assert response.status == 400, (case.id, body)
        assert body["error"]["code"] == code, (case.id, body)
        assert await router.snapshot() == before, case.id
    assert await ledger.balance(credit_account) == credit_before
    assert await ledger.open_holds(credit_account) == []
    assert await router.app[USAGE_LOG].recent(payer_account=credit_account, limit=10) == []
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("amount", ["1_000", "1e3", "%201", "NaN", "0", "1000001"])
async def test_topup_amount_is_parsed_strictly(router: RunningRouter, amount: str) -> None:
    before = await router.snapshot()
    response = await router.client.post(f"/v1/credits/topup?amount={amount}")
    body = await response.json()
    # "1_000" was read as 1,000 USD: an offer (402) instead of a refusal.
    assert response.status == 400, body
    assert body["error"]["code"] == "invalid_amount"
    assert await router.snapshot() == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_refusal_after_settlement_carries_the_payment_and_keeps_it_as_credit(
    router: RunningRouter, stream: bool
) -> None:
    """An Anthropic model cannot take a tool call whose arguments are not JSON; that is found only when the
    adapter translates, after the payment settled. The answer is a 400 with PAYMENT-RESPONSE, and the
    whole payment stays as the payer's credit."""
    payer = router.payers[6]
    body = {
        "model": ANTHROPIC_MODEL,
        "stream": stream,
        "max_tokens": 20,
        "messages": [
            {"role": "user", "content": "call f"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{no"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
    }
    offer_response = await router.client.post("/v1/chat/completions", json=body)
    assert offer_response.status == 402, await offer_response.text()
    offer = await offer_response.json()
    header = encode_b64_json(sign_v2_payment(payer, offer))
    calls_before = await router.upstream_calls()
    response = await router.client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header}
    )
    error = (await response.json())["error"]
    assert response.status == 400, error
    assert error["code"] == "unsupported_request"
    assert PAYMENT_KEPT_AS_CREDIT in error["message"]
    assert decode_b64_json(response.headers["PAYMENT-RESPONSE"])["success"] is True
    assert await router.upstream_calls() == calls_before
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    paid_nano_usd = int(offer["accepts"][0]["amount"]) * 1_000
    assert (await ledger.balance(credit_account)).available == paid_nano_usd
    assert await ledger.open_holds(credit_account) == []
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        # str.isdigit() admits "²", which int() refuses: these were 500s.
        ("GET", "/v1/usage?limit=%C2%B2", 400),
        ("GET", "/v1/usage?limit=" + "9" * 5_000, 400),
        ("DELETE", "/v1/keys/%C2%B2", 404),
        ("DELETE", "/v1/keys/" + "9" * 40, 404),
    ],
)
async def test_numeric_path_and_query_values_are_parsed_strictly(
    router: RunningRouter, method: str, path: str, status: int
) -> None:
    key: str = (await obtain_key(router, router.payers[7]))["key"]
    response = await router.client.request(method, path, headers={"Authorization": f"Bearer {key}"})
    body = await response.json()
    assert response.status == status, body
    assert body["error"]["type"] == "invalid_request_error"
