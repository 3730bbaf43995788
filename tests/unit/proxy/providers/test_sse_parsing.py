"""`iter_sse` parses server-sent events however the network splits the bytes: events split across reads,
several per read, CRLF line ends, comments, multi-line data, a last event without its blank line; an
over-long line is an invalid response and a stalled stream a timeout.

Method: a real aiohttp StreamReader fed the same bytes in Hypothesis-chosen pieces; the events must equal
those parsed from the whole body at once (and a hand-written expectation).
"""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.providers.errors import UpstreamError
from proxy.providers.transport import SSE_LINE_BYTES_MAX, SseEvent, iter_sse

BODY = (
    b": keep-alive comment\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: message_start\n"
    b"data: first line\n"
    b"data:second line\n\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\n\n"
    b"\n"
    b"data: [DONE]"  # The last event has no blank line: EOF dispatches it.
)
EXPECTED = [
    SseEvent(None, '{"a": 1}'),
    SseEvent("message_start", "first line\nsecond line"),
    SseEvent(None, "café €"),
    SseEvent(None, "[DONE]"),
]


def _reader(pieces: list[bytes]) -> aiohttp.StreamReader:
    reader = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for piece in pieces:
        if piece:
            reader.feed_data(piece)
    reader.feed_eof()
    return reader


async def _events(pieces: list[bytes]) -> list[SseEvent]:
    return [event async for event in iter_sse(_reader(pieces), first_s=5, idle_s=5)]


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(body)) for cut in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


async def test_a_body_read_at_once_gives_its_events() -> None:
    assert await _events([BODY]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=30))
def test_events_do_not_depend_on_how_the_bytes_arrive(cuts: list[int]) -> None:
    assert asyncio.run(_events(_split(BODY, cuts))) == EXPECTED


async def test_an_over_long_line_is_an_invalid_response() -> None:
    with pytest.raises(UpstreamError) as raised:
        await _events([b"data: " + b"x" * SSE_LINE_BYTES_MAX, b"x\n\n"])
    assert raised.value.kind == "invalid_response"


async def test_a_stalled_stream_times_out() -> None:
    reader = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(b"data: one\n\n")
    events = iter_sse(reader, first_s=5, idle_s=0.01)
    assert await anext(events) == SseEvent(None, "one")
    with pytest.raises(TimeoutError):
        await anext(events)  # Nothing more arrives and no EOF: the idle bound ends it.
