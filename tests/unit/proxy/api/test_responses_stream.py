"""The Responses stream renderer: chat chunks in, the Responses API's typed SSE events out.

Pure: feeds chunks as an adapter produces them and parses the bytes back, checking each event's order,
`event:` line, sequence number and shape, for text, function calls (one and two), a cut by
max_output_tokens and a failed stream.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.api.responses_stream import ResponsesStreamRenderer
from proxy.api.responses_types import ResponsesRequest
from proxy.errors import UpstreamTimeout
from proxy.openai_types import (
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    FinishReason,
    FunctionCallDelta,
    ToolCallDelta,
)
from proxy.providers.base import TokenUsage

MODEL = "google/gemini-2.5-flash-lite"
USAGE = TokenUsage(input_tokens=12, output_tokens=5)


def renderer(**fields: Any) -> ResponsesStreamRenderer:
    body = ResponsesRequest.model_validate({"model": MODEL, "input": "Hi", "stream": True, **fields})
    return ResponsesStreamRenderer(body, response_id="resp_test", created_at_s=1_700_000_000)


def chunk(delta: ChoiceDelta, finish_reason: FinishReason | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="c", created=1, model="upstream", choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)]
    )


def call_delta(
    index: int, *, call_id: str | None = None, name: str | None = None, arguments: str | None = None
) -> ChoiceDelta:
    return ChoiceDelta(
        tool_calls=[
            ToolCallDelta(index=index, id=call_id, function=FunctionCallDelta(name=name, arguments=arguments))
        ]
    )


def events_of(data: bytes) -> list[dict[str, Any]]:
    """Parses SSE frames, checking each `event:` line names the type of its data."""
    events = []
    for frame in data.decode().split("\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        payload = json.loads(data_line.removeprefix("data: "))
        assert payload["type"] == event_line.removeprefix("event: ")
        events.append(payload)
    return events


def run(
    stream: ResponsesStreamRenderer,
    chunks: list[ChatCompletionChunk],
    usage: TokenUsage,
    *,
    reported: bool = True,
) -> list[dict[str, Any]]:
    data = stream.opened(model_id=MODEL)
    for each in chunks:
        data += stream.chunk(each)
    data += stream.finished(reported=usage if reported else None, charged=usage)
    events = events_of(data)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def test_text_stream_events_in_order_with_the_final_response() -> None:
    chunks = [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content="Hel")),
        chunk(ChoiceDelta(content="lo")),
        chunk(ChoiceDelta(), finish_reason="stop"),
    ]
    events = run(renderer(instructions="Be nice."), chunks, USAGE)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert (created["id"], created["status"], created["model"], created["output"]) == (
        "resp_test",
        "in_progress",
        MODEL,
        [],
    )
    added = events[2]
    assert added["output_index"] == 0
    assert added["item"]["type"] == "message"
    assert added["item"]["status"] == "in_progress"
    item_id = added["item"]["id"]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hel", "lo"]
    for event in events[3:8]:
        assert (event["item_id"], event["output_index"], event["content_index"]) == (item_id, 0, 0)
    assert events[6]["text"] == "Hello"
    assert events[7]["part"] == {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    done_item = events[8]["item"]
    assert (done_item["id"], done_item["status"]) == (item_id, "completed")
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"] == [done_item]
    assert final["instructions"] == "Be nice."
    assert final["usage"]["total_tokens"] == 17


def test_a_function_call_streams_its_arguments() -> None:
    chunks = [
        chunk(call_delta(0, call_id="call_1", name="get_weather", arguments="")),
        chunk(call_delta(0, arguments='{"city":')),
        chunk(call_delta(0, arguments='"Paris"}')),
        chunk(ChoiceDelta(), finish_reason="tool_calls"),
    ]
    events = run(renderer(), chunks, USAGE)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[2]["item"]
    assert (added["type"], added["call_id"], added["name"], added["arguments"]) == (
        "function_call",
        "call_1",
        "get_weather",
        "",
    )
    assert events[5]["arguments"] == '{"city":"Paris"}'
    assert events[6]["item"]["arguments"] == '{"city":"Paris"}'
    assert events[6]["item"]["status"] == "completed"
    assert events[-1]["response"]["output"] == [events[6]["item"]]


def test_text_then_two_calls_take_consecutive_output_indexes() -> None:
    chunks = [
        chunk(ChoiceDelta(content="Checking.")),
        chunk(call_delta(0, call_id="call_1", name="get_weather", arguments='{"city":"Paris"}')),
        chunk(call_delta(1, call_id="call_2", name="get_weather", arguments='{"city":"Rome"}')),
        chunk(ChoiceDelta(), finish_reason="tool_calls"),
    ]
    events = run(renderer(), chunks, USAGE)
    added = [event for event in events if event["type"] == "response.output_item.added"]
    done = [event for event in events if event["type"] == "response.output_item.done"]
    assert [(e["output_index"], e["item"]["type"]) for e in added] == [
        (0, "message"),
        (1, "function_call"),
        (2, "function_call"),
    ]
    assert [e["output_index"] for e in done] == [0, 1, 2]
    # The message is done before the first call is added.
    assert events.index(done[0]) < events.index(added[1])
    output = events[-1]["response"]["output"]
    assert [item.get("call_id") for item in output] == [None, "call_1", "call_2"]


def test_a_cut_by_max_output_tokens_ends_incomplete() -> None:
    chunks = [chunk(ChoiceDelta(content="Partial")), chunk(ChoiceDelta(), finish_reason="length")]
    events = run(renderer(max_output_tokens=3), chunks, USAGE)
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["max_output_tokens"] == 3


def test_a_refusal_streams_as_a_refusal_part() -> None:
    events = run(renderer(), [chunk(ChoiceDelta(refusal="No.")), chunk(ChoiceDelta(), "stop")], USAGE)
    kinds = [event["type"] for event in events]
    assert "response.refusal.delta" in kinds
    (done,) = [event for event in events if event["type"] == "response.refusal.done"]
    assert done["refusal"] == "No."
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_without_reported_usage_the_final_response_shows_the_usage_charged() -> None:
    # The relay charges an estimate when the upstream reports nothing; the Response says what was charged.
    events = run(renderer(), [chunk(ChoiceDelta(content="x"), "stop")], USAGE, reported=False)
    assert events[-1]["response"]["usage"]["total_tokens"] == USAGE.input_tokens + USAGE.output_tokens


def test_a_failed_stream_ends_with_an_error_event() -> None:
    stream = renderer()
    data = stream.opened(model_id=MODEL) + stream.chunk(chunk(ChoiceDelta(content="Hal")))
    data += stream.failed(
        UpstreamTimeout("the stream reached its duration bound", code="stream_duration_exceeded")
    )
    events = events_of(data)
    error = events[-1]
    assert error["type"] == "error"
    assert error["code"] == "stream_duration_exceeded"
    assert error["message"] == "the stream reached its duration bound"
    assert error["sequence_number"] == len(events) - 1
    assert "response.completed" not in [event["type"] for event in events]
