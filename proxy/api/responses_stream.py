"""Renders a chat stream as the Responses API's typed SSE events (a `StreamRenderer` for the stream relay).

Order, as OpenAI streams it: `response.created`, `response.in_progress`; per output item
`response.output_item.added`, then for a message `response.content_part.added`, `response.output_text.delta`…,
`response.output_text.done`, `response.content_part.done` (refusals likewise with `response.refusal.*`), for
a function call `response.function_call_arguments.delta`…, `.done`; then `response.output_item.done`; last
`response.completed` (or `response.incomplete` when the model was cut by `max_output_tokens`). A cut stream
ends with an `error` event instead. Every event carries a `sequence_number` counting from 0. A stored
response is handed to `on_completed` (by `persist`, which the relay awaits) before its last event is written.

Pure: the relay writes, bounds and charges; this only turns what it sees into bytes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.api.responses_translation import (
    function_call_item,
    new_item_id,
    response_object,
    response_status,
)
from proxy.api.responses_types import ResponsesRequest
from proxy.errors import ApiError
from proxy.openai_types import ChatCompletionChunk, FinishReason, ToolCallDelta
from proxy.providers.base import TokenUsage

__all__ = ["ResponsesStreamRenderer"]

# The part type of a message's content, and its events' type prefix and text field.
_PART_EVENTS = {"output_text": ("response.output_text", "text"), "refusal": ("response.refusal", "refusal")}


@dataclass
class _Message:
    item_id: str
    output_index: int
    parts: list[tuple[str, list[str]]] = field(default_factory=list)  # (type, text pieces)


@dataclass
class _Call:
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


OnCompleted = Callable[[dict[str, Any]], Awaitable[None]]


class ResponsesStreamRenderer:
    """`on_completed` (a stored response) receives the final Response before the caller reads it."""

    def __init__(
        self,
        body: ResponsesRequest,
        *,
        response_id: str,
        created_at_s: int,
        store: bool = False,
        on_completed: OnCompleted | None = None,
    ) -> None:
        assert on_completed is None or store, "only a stored response is handed on"
        self._body = body
        self._response_id = response_id
        self._created_at_s = created_at_s
        self._store = store
        self._on_completed = on_completed
        self._final: dict[str, Any] | None = None
        self._model_id = ""
        self._sequence_number = 0
        self._output: list[dict[str, Any]] = []  # Items done, by output index.
        self._message: _Message | None = None
        self._calls: dict[int, _Call] = {}  # Open function calls, by the chunk's tool-call index.
        self._finish_reason: FinishReason | None = None

    # --- StreamRenderer --------------------------------------------------------------------------------

    def opened(self, *, model_id: str) -> bytes:
        self._model_id = model_id
        snapshot = self._response(status="in_progress", usage=None)
        return self._event("response.created", response=snapshot) + self._event(
            "response.in_progress", response=snapshot
        )

    def chunk(self, chunk: ChatCompletionChunk) -> bytes:
        data = b""
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                data += self._text_delta("output_text", delta.content)
            if delta.refusal:
                data += self._text_delta("refusal", delta.refusal)
            for call in delta.tool_calls or []:
                data += self._call_delta(call)
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
        return data

    def finished(self, *, reported: TokenUsage | None, charged: TokenUsage) -> bytes:
        del reported  # The final Response shows the usage charged, as the non-streamed one does.
        data = self._close_message() + self._close_calls()
        status, incomplete_details = response_status(self._finish_reason)
        final = self._response(status=status, usage=charged, incomplete_details=incomplete_details)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self._final = final
        return data + self._event(kind, response=final)

    async def persist(self) -> None:
        """Hands the final Response on (to be stored) before the relay writes its event."""
        if self._on_completed is not None and self._final is not None:
            await self._on_completed(self._final)

    def failed(self, error: ApiError) -> bytes:
        return self._event("error", code=error.code, message=error.message, param=error.param)

    # --- items -----------------------------------------------------------------------------------------

    def _text_delta(self, part_type: str, text: str) -> bytes:
        data = b""
        if self._message is None:
            data += self._close_calls()
            self._message = _Message(item_id=new_item_id("msg"), output_index=self._next_output_index())
            item = {"type": "message", "id": self._message.item_id, "status": "in_progress"}
            data += self._event(
                "response.output_item.added",
                output_index=self._message.output_index,
                item={**item, "role": "assistant", "content": []},
            )
        message = self._message
        if not message.parts or message.parts[-1][0] != part_type:
            data += self._close_part(message)
            message.parts.append((part_type, []))
            data += self._event(
                "response.content_part.added", **self._part_place(message), part=_part(part_type, "")
            )
        message.parts[-1][1].append(text)
        prefix, _ = _PART_EVENTS[part_type]
        logprobs: dict[str, list[Any]] = {"logprobs": []} if part_type == "output_text" else {}
        return data + self._event(f"{prefix}.delta", **self._part_place(message), delta=text, **logprobs)

    def _call_delta(self, delta: ToolCallDelta) -> bytes:
        data = b""
        call = self._calls.get(delta.index)
        if call is None:
            data += self._close_message()
            name = delta.function.name if delta.function and delta.function.name else ""
            call = _Call(
                item_id=new_item_id("fc"),
                output_index=self._next_output_index(),
                call_id=delta.id or new_item_id("fc"),
                name=name,
            )
            self._calls[delta.index] = call
            data += self._event(
                "response.output_item.added",
                output_index=call.output_index,
                item=self._call_item(call, status="in_progress", arguments=""),
            )
        arguments = delta.function.arguments if delta.function else None
        if arguments:
            call.arguments.append(arguments)
            data += self._event(
                "response.function_call_arguments.delta",
                item_id=call.item_id,
                output_index=call.output_index,
                delta=arguments,
            )
        return data

    def _close_message(self) -> bytes:
        message, self._message = self._message, None
        if message is None:
            return b""
        data = self._close_part(message)
        item = {
            "type": "message",
            "id": message.item_id,
            "status": "completed",
            "role": "assistant",
            "content": [_part(kind, "".join(pieces)) for kind, pieces in message.parts],
        }
        self._output.append(item)
        return data + self._event("response.output_item.done", output_index=message.output_index, item=item)

    def _close_part(self, message: _Message) -> bytes:
        if not message.parts:
            return b""
        kind, pieces = message.parts[-1]
        text = "".join(pieces)
        prefix, text_field = _PART_EVENTS[kind]
        logprobs: dict[str, list[Any]] = {"logprobs": []} if kind == "output_text" else {}
        place = self._part_place(message)
        return self._event(f"{prefix}.done", **place, **{text_field: text}, **logprobs) + self._event(
            "response.content_part.done", **place, part=_part(kind, text)
        )

    def _close_calls(self) -> bytes:
        data = b""
        for call in sorted(self._calls.values(), key=lambda call: call.output_index):
            arguments = "".join(call.arguments)
            item = self._call_item(call, status="completed", arguments=arguments)
            self._output.append(item)
            data += self._event(
                "response.function_call_arguments.done",
                item_id=call.item_id,
                output_index=call.output_index,
                arguments=arguments,
            )
            data += self._event("response.output_item.done", output_index=call.output_index, item=item)
        self._calls = {}
        return data

    # --- rendering -------------------------------------------------------------------------------------

    def _next_output_index(self) -> int:
        return len(self._output) + (self._message is not None) + len(self._calls)

    def _part_place(self, message: _Message) -> dict[str, Any]:
        return {
            "item_id": message.item_id,
            "output_index": message.output_index,
            "content_index": len(message.parts) - 1,
        }

    def _call_item(self, call: _Call, *, status: str, arguments: str) -> dict[str, Any]:
        return function_call_item(
            item_id=call.item_id, call_id=call.call_id, name=call.name, arguments=arguments, status=status
        )

    def _response(
        self, *, status: str, usage: TokenUsage | None, incomplete_details: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return response_object(
            self._body,
            response_id=self._response_id,
            created_at_s=self._created_at_s,
            model_id=self._model_id,
            status=status,
            output=list(self._output),  # Items close in output-index order.
            usage=usage,
            incomplete_details=incomplete_details,
            store=self._store,
        )

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence_number, **fields}
        self._sequence_number += 1
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
