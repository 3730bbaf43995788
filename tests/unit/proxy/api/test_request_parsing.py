"""The edge's JSON bounds: nesting depth counted without recursion, strings skipped, bad text refused.

Method: the pure functions of proxy/api/request_parsing.py on hand-made bodies, at and around the bound.
"""

from __future__ import annotations

import json

import pytest

from proxy.api.request_parsing import parse_json_bounded
from proxy.errors import InvalidRequest
from proxy.json_bounds import JSON_DEPTH_MAX, json_depth_exceeds
from proxy.openai_types import ChatCompletionRequest


def nested(depth: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


@pytest.mark.parametrize(("depth", "exceeds"), [(1, False), (64, False), (65, True), (80_000, True)])
def test_depth_is_counted_exactly(depth: int, exceeds: bool) -> None:
    assert json_depth_exceeds(nested(depth), depth_max=64) is exceeds


def test_objects_and_arrays_both_count() -> None:
    body = b'{"a":' * 40 + b"[" * 30 + b"]" * 30 + b"}" * 40
    assert json_depth_exceeds(body, depth_max=69)
    assert not json_depth_exceeds(body, depth_max=70)


def test_brackets_inside_strings_do_not_count() -> None:
    text = "[" * 1_000 + '\\"{{{' + "]" * 3
    body = json.dumps({"messages": [{"content": text}]}).encode()
    assert not json_depth_exceeds(body, depth_max=3)
    assert parse_json_bounded(body)["messages"][0]["content"] == text


def test_wide_documents_are_not_deep() -> None:
    body = b"[" + b"[],{}," * 200_000 + b"1]"
    assert not json_depth_exceeds(body, depth_max=2)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(nested(80_000), id="80000-brackets"),
        pytest.param(b'{"model":"m","extra":' + nested(JSON_DEPTH_MAX) + b"}", id="one-over-the-bound"),
        pytest.param(b'{"content":"\\ud800"}', id="unpaired-high-surrogate"),
        pytest.param(b'{"\\udfff":1}', id="unpaired-low-surrogate-key"),
        pytest.param(b'{"temperature":NaN}', id="nan"),
        pytest.param(b'{"seed":-Infinity}', id="infinity"),
        pytest.param(b'{"seed":' + b"9" * 5_000 + b"}", id="integer-over-python-digit-limit"),
        pytest.param(b"{not json", id="not-json"),
    ],
)
def test_bad_bodies_are_a_400(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_json_bounded(body)
    assert raised.value.status == 400
    assert raised.value.code == "invalid_json"


def test_paired_surrogates_are_fine() -> None:
    assert parse_json_bounded(b'{"content":"\\ud83d\\ude00"}') == {"content": "\U0001f600"}


def test_a_body_at_the_bound_validates_and_serializes() -> None:
    # Depth 64 in total: the body object and the messages list take two levels.
    schema: object = {}
    for _ in range(JSON_DEPTH_MAX - 6):
        schema = {"items": schema}
    document = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
    }
    raw = json.dumps(document).encode()
    assert not json_depth_exceeds(raw, depth_max=JSON_DEPTH_MAX)
    request = ChatCompletionRequest.model_validate(parse_json_bounded(raw))
    assert json.loads(json.dumps(request.model_dump(mode="json", exclude_none=True)))["tools"]
