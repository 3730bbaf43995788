"""An OpenAI-compatible stream's data lines: a chunk parses in one pass; an error event some compatible
servers send inside the stream is a server error; anything else is an invalid response."""

from __future__ import annotations

import pytest

from proxy.providers.errors import UpstreamError
from proxy.providers.openai_compatible import _parse_chunk

CHUNK = (
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"caf\\u00e9"},"finish_reason":null}]}'
)


def test_a_chunk_parses() -> None:
    chunk = _parse_chunk(CHUNK)
    assert chunk.choices[0].delta.content == "café"
    assert chunk.model == "m"


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        ('{"error": {"message": "overloaded"}}', "server_error", "overloaded"),
        ('{"error": "rate limited"}', "server_error", "rate limited"),
        ('{"id": "x", "choices": "nope"}', "invalid_response", "not a chat completion chunk"),
        ("not json", "invalid_response", "not JSON"),
        ("[1, 2]", "invalid_response", "not a JSON object"),
    ],
)
def test_what_is_not_a_chunk_says_what_it_is(data: str, kind: str, words: str) -> None:
    with pytest.raises(UpstreamError) as raised:
        _parse_chunk(data)
    assert raised.value.kind == kind
    assert words in str(raised.value)
