"""Field-by-field comparison of what MegaRouter writes with the real wire formats of Anthropic's Messages API
and OpenAI's Responses API.

Two references, each checking what the other cannot:
- recorded examples of the real formats in tests/data/wire (see its README): every object and stream event
  we write must have exactly the keys the real one of the same kind has, with values of the same JSON type,
  and a stream's events must come in the order the real streams use;
- the official SDKs' own models (`anthropic.types`, `openai.types.responses`), generated from the providers'
  API specifications: every object must validate, and carry no field the SDK does not know.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

WIRE = Path(__file__).resolve().parents[2] / "data" / "wire"
JsonObject = dict[str, Any]
# Objects whose keys are the caller's or the model's own (tool input, JSON schemas, metadata): their shape is
# free, so only their JSON type is compared.
FREE_FORM_KEYS = frozenset({"input", "input_schema", "parameters", "schema", "metadata"})


def parse_sse(text: str) -> list[tuple[str, JsonObject]]:
    """(event name, data) of each event of an SSE body; every event must be named and carry one JSON line."""
    events: list[tuple[str, JsonObject]] = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.strip().splitlines())
        assert set(lines) == {"event", "data"}, f"an SSE event with fields {sorted(lines)}"
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def fixture_json(name: str) -> JsonObject:
    value: JsonObject = json.loads((WIRE / name).read_text())
    return value


def fixture_events(*names: str) -> list[tuple[str, JsonObject]]:
    return [event for name in names for event in parse_sse((WIRE / name).read_text())]


def kind_of(payload: JsonObject) -> str:
    """An object's kind: its `type`, refined by the type of the block, delta, item or part it carries."""
    kind = str(payload.get("type", "object"))
    for inner in ("content_block", "delta", "item", "part"):
        value = payload.get(inner)
        if isinstance(value, dict) and "type" in value:
            return f"{kind}/{value['type']}"
    return kind


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_same_shape(ours: Any, real: Any, path: str = "$") -> None:
    """`ours` has the real object's keys, no others, and values of the same JSON types, recursively. A null
    on either side matches any value (the real API sends null for what is not known yet); list elements are
    compared with the real element of the same `type`."""
    if ours is None or real is None:
        return
    ours_type, real_type = _json_type(ours), _json_type(real)
    assert ours_type == real_type, f"{path}: {ours_type} where the real format has {real_type}"
    if isinstance(real, dict):
        missing, extra = sorted(set(real) - set(ours)), sorted(set(ours) - set(real))
        assert not missing, f"{path}: missing {missing}"
        assert not extra, f"{path}: not in the real format {extra}"
        for key in real:
            if key not in FREE_FORM_KEYS:
                assert_same_shape(ours[key], real[key], f"{path}.{key}")
    elif isinstance(real, list) and real:
        by_type = {item.get("type") if isinstance(item, dict) else None: item for item in real}
        for index, item in enumerate(ours):
            key = item.get("type") if isinstance(item, dict) else None
            if key in by_type:
                assert_same_shape(item, by_type[key], f"{path}[{index}]")


def assert_events_match(ours: list[tuple[str, JsonObject]], real: list[tuple[str, JsonObject]]) -> None:
    """Each of our events is named by its `type` and has the shape of the real event of its kind."""
    real_by_kind = {kind_of(payload): payload for _, payload in real}
    for name, payload in ours:
        assert name == payload["type"], f"event {name} carries type {payload['type']}"
        kind = kind_of(payload)
        assert kind in real_by_kind, f"no real event of kind {kind} to compare with"
        assert_same_shape(payload, real_by_kind[kind], kind)


def assert_sdk_model(payload: JsonObject, model: Any) -> Any:
    """The payload validates as the SDK's model (or union) and carries no field the SDK does not define."""
    value = TypeAdapter(model).validate_python(payload)
    _assert_no_extra(value, kind_of(payload))
    return value


def _assert_no_extra(value: Any, path: str) -> None:
    if isinstance(value, BaseModel):
        extra = value.model_extra or {}
        assert not extra, f"{path}: fields the SDK does not define: {sorted(extra)}"
        for name in type(value).model_fields:
            _assert_no_extra(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_no_extra(item, f"{path}[{index}]")


def event_names(events: list[tuple[str, JsonObject]], *, skip: frozenset[str] = frozenset()) -> str:
    return " ".join(name for name, _ in events if name not in skip)


# The event order of a Messages stream: message_start, blocks (start, deltas, stop), message_delta,
# message_stop; pings may come anywhere after message_start.
ANTHROPIC_STREAM = re.compile(
    r"message_start( content_block_start( content_block_delta)* content_block_stop)*"
    r" message_delta message_stop"
)
_RESPONSES_ITEM = (
    r"response\.output_item\.added"
    r"(( response\.content_part\.added( response\.(output_text|refusal)\.delta)*"
    r" response\.(output_text|refusal)\.done response\.content_part\.done)+"
    r"|( response\.function_call_arguments\.delta)* response\.function_call_arguments\.done)"
    r" response\.output_item\.done"
)
# The event order of a Responses stream: created, in_progress, each output item, completed or incomplete.
RESPONSES_STREAM = re.compile(
    rf"response\.created response\.in_progress( {_RESPONSES_ITEM})* response\.(completed|incomplete)"
)
