"""Deterministic replies for the simulated providers: the same request always gets the same answer.

The seed is a hash of the request's model and conversation, so tests can predict text, tool calls and
usage without storing anything. A reply is a list of words from a fixed vocabulary; each word (with its
leading space) counts as one completion token, which keeps streamed and non-streamed counts identical.
Structured output is honoured as real models honour it: a reply asked for with a JSON schema is an
instance of that schema, and tool arguments are instances of the tool's parameter schema (see
schema_instances; an unsatisfiable schema raises SchemaUnsatisfiable, which each format answers with
a 400). Every reply, tool calls and JSON documents included, stops at the output limit it was given, as
real models do. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from proxy.devnet.simulator.schema_instances import SchemaUnsatisfiable, instance_for

__all__ = [
    "DOCUMENT_PIECE_CHARS",
    "ReplyPlan",
    "ToolSpec",
    "plan_reply",
    "seed_for",
    "tool_arguments",
    "tool_call_tokens",
]

VOCABULARY = (
    "the",
    "router",
    "picks",
    "a",
    "model",
    "that",
    "fits",
    "the",
    "task",
    "and",
    "the",
    "budget",
    "while",
    "every",
    "token",
    "is",
    "counted",
    "and",
    "settled",
    "on",
    "chain",
    "with",
    "exact",
    "integer",
    "money",
    "so",
    "nothing",
    "drifts",
    "between",
    "the",
    "ledger",
    "and",
    "the",
    "wallet",
    "latency",
    "stays",
    "low",
    "because",
    "streams",
    "flow",
    "through",
    "without",
    "buffering",
    "and",
    "failures",
    "fail",
    "over",
    "quickly",
    "simulated",
    "providers",
    "answer",
    "deterministically",
    "for",
    "tests",
    "demos",
    "and",
    "benchmarks",
)
REPLY_WORDS_MIN = 12
REPLY_WORDS_SPREAD = 36
REASONING_TOKENS_MIN = 16
REASONING_TOKENS_SPREAD = 64
DOCUMENT_PIECE_CHARS = 4  # A JSON document is streamed, and counted, at about 4 characters a token.


def seed_for(material: Any) -> int:
    """A 64-bit seed from any JSON-able value (sorted keys, so dict order does not matter)."""
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """What the simulated model answers. `words` are the visible tokens; `tool_call` replaces text."""

    words: tuple[str, ...]
    finish: str  # "stop" | "length" | "tool_calls"; each format renders its own spelling.
    tool_call: tuple[str, str] | None  # (name, JSON arguments)
    tool_call_id: str
    reasoning_tokens: int
    # JSON mode: the words become the value of {"answer": "..."} (cut short with them at the length limit).
    json_object: bool = False
    # Structured output: `words` are consecutive slices of a JSON document, rendered verbatim.
    structured: bool = False
    # Output tokens reported on top of those generated: a provider over-reporting usage (fault injection).
    tokens_over_reported: int = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def pieces(self) -> list[str]:
        """Stream deltas: the first word capitalised, the others with a leading space."""
        if self.structured:
            return list(self.words)
        if not self.words:
            return ['{"answer": ""}'] if self.json_object else []
        first = self.words[0].capitalize()
        pieces = [first, *(f" {word}" for word in self.words[1:])]
        if self.json_object:
            pieces[0] = '{"answer": "' + pieces[0]
            if self.finish == "stop":
                pieces[-1] += '"}'
        return pieces

    @property
    def complete_tool_call(self) -> tuple[str, str] | None:
        """The tool call when it was finished; formats whose calls are JSON objects (Anthropic's `input`,
        Gemini's `args`) cannot carry the arguments of a call cut short by the output limit."""
        return self.tool_call if self.finish == "tool_calls" else None

    @property
    def output_tokens(self) -> int:
        tool_tokens = 0
        if self.tool_call is not None:
            tool_tokens = tool_call_tokens(*self.tool_call)
        return len(self.words) + tool_tokens + self.reasoning_tokens + self.tokens_over_reported


def tool_call_tokens(name: str, arguments: str) -> int:
    """A token of framing, then about 4 characters per token of name and arguments."""
    return 1 + -(-(len(name) + len(arguments)) // 4)


def _tool_reply(
    tool: ToolSpec, arguments: str, *, room_tokens: int | None, call_id: str, reasoning_tokens: int
) -> ReplyPlan:
    """A call of `tool`, cut where the output limit falls as a real model's would be (finish "length"):
    the arguments stop mid-JSON, or, when not even the name fits, no call is made at all."""
    if room_tokens is None or tool_call_tokens(tool.name, arguments) <= room_tokens:
        return ReplyPlan((), "tool_calls", (tool.name, arguments), call_id, reasoning_tokens)
    if tool_call_tokens(tool.name, "") > room_tokens:
        return ReplyPlan((), "length", None, call_id, reasoning_tokens)
    cut_chars = (room_tokens - 1) * 4 - len(tool.name)
    plan = ReplyPlan((), "length", (tool.name, arguments[:cut_chars]), call_id, reasoning_tokens)
    assert plan.output_tokens - reasoning_tokens <= room_tokens
    return plan


def tool_arguments(parameters: dict[str, Any], seed: int) -> dict[str, Any]:
    """Arguments that validate against the tool's parameter schema, which describes an object even when
    it does not say so (an empty schema, as OpenAI's SDK sends for a tool without parameters)."""
    schema = parameters if "type" in parameters else {"type": "object", **parameters}
    arguments = instance_for(schema, seed=seed)
    if not isinstance(arguments, dict):
        raise SchemaUnsatisfiable("tool parameters must describe a JSON object")
    return arguments


def _document_reply(
    document: str, *, room_tokens: int | None, call_id: str, reasoning_tokens: int
) -> ReplyPlan:
    """A JSON document as the reply's text, cut mid-document at the output limit (finish "length")."""
    pieces = tuple(
        document[i : i + DOCUMENT_PIECE_CHARS] for i in range(0, len(document), DOCUMENT_PIECE_CHARS)
    )
    count = len(pieces) if room_tokens is None else min(len(pieces), room_tokens)
    finish = "stop" if count == len(pieces) else "length"
    return ReplyPlan(pieces[:count], finish, None, call_id, reasoning_tokens, structured=True)


def plan_reply(
    *,
    seed: int,
    output_tokens_max: int | None,
    tool: ToolSpec | None,
    reasoning: bool,
    json_object: bool = False,
    response_schema: dict[str, Any] | None = None,
    tokens_over_reported: int = 0,
) -> ReplyPlan:
    """The reply for a seed. `tool` is the tool to call (the format's handler decides whether to call one);
    otherwise, with a `response_schema`, the reply is an instance of it. Raises SchemaUnsatisfiable."""
    assert output_tokens_max is None or output_tokens_max >= 1
    assert tokens_over_reported >= 0
    plan = _plan_reply(
        seed=seed,
        output_tokens_max=output_tokens_max,
        tool=tool,
        reasoning=reasoning,
        json_object=json_object,
        response_schema=response_schema,
    )
    return dataclasses.replace(plan, tokens_over_reported=tokens_over_reported)


def _plan_reply(
    *,
    seed: int,
    output_tokens_max: int | None,
    tool: ToolSpec | None,
    reasoning: bool,
    json_object: bool,
    response_schema: dict[str, Any] | None,
) -> ReplyPlan:
    reasoning_tokens = 0
    if reasoning:
        reasoning_tokens = REASONING_TOKENS_MIN + seed % REASONING_TOKENS_SPREAD
        if output_tokens_max is not None:
            reasoning_tokens = min(reasoning_tokens, output_tokens_max // 2)
    call_id = f"{seed:016x}"[:12]
    room_tokens = None if output_tokens_max is None else output_tokens_max - reasoning_tokens
    if tool is not None:
        arguments = json.dumps(tool_arguments(tool.parameters, seed), separators=(",", ":"))
        return _tool_reply(
            tool, arguments, room_tokens=room_tokens, call_id=call_id, reasoning_tokens=reasoning_tokens
        )
    if response_schema is not None:
        document = json.dumps(instance_for(response_schema, seed=seed), separators=(",", ":"))
        return _document_reply(
            document, room_tokens=room_tokens, call_id=call_id, reasoning_tokens=reasoning_tokens
        )
    wanted = REPLY_WORDS_MIN + seed % REPLY_WORDS_SPREAD
    room = wanted if room_tokens is None else room_tokens
    count = min(wanted, room)
    words = tuple(VOCABULARY[(seed // 7 + index * 13) % len(VOCABULARY)] for index in range(count))
    finish = "stop" if count == wanted else "length"
    return ReplyPlan(words, finish, None, call_id, reasoning_tokens, json_object)
