"""A request's strategy comes from its route object, else its header, else its API key, else the server;
whether unrated models may be chosen comes from its route object, else its header, else no."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.app.config import example_config_text, load_settings
from proxy.openai_types import ChatCompletionRequest
from proxy.routing.errors import InvalidRoute
from proxy.serving.planning import ALLOW_UNRATED_HEADER, STRATEGY_HEADER, _route_request
from tests.unit.proxy.app.test_config import ENVIRON, _write


def _body(route: dict[str, Any] | None) -> ChatCompletionRequest:
    document: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    if route is not None:
        document["route"] = route
    return ChatCompletionRequest.model_validate(document)


@pytest.mark.parametrize(
    ("route", "header", "key", "expected"),
    [
        ({"strategy": "cost"}, "latency", "availability", "cost"),
        ({"models": []}, "latency", "availability", "latency"),
        (None, None, "availability", "availability"),
        (None, None, None, "balanced"),
    ],
)
def test_strategy_precedence(
    tmp_path: Path, route: dict[str, Any] | None, header: str | None, key: str | None, expected: str
) -> None:
    settings = load_settings(_write(tmp_path, example_config_text()), ENVIRON)
    headers = {STRATEGY_HEADER: header} if header else {}
    assert _route_request(_body(route), headers, settings, key).strategy == expected


@pytest.mark.parametrize(
    ("route", "header", "expected"),
    [
        (None, None, False),
        (None, "true", True),
        (None, "FALSE", False),
        ({"allow_unrated": False}, "true", False),
        ({"allow_unrated": True}, None, True),
        ({"strategy": "cost"}, "1", True),
    ],
)
def test_allow_unrated_precedence(
    tmp_path: Path, route: dict[str, Any] | None, header: str | None, expected: bool
) -> None:
    settings = load_settings(_write(tmp_path, example_config_text()), ENVIRON)
    headers = {ALLOW_UNRATED_HEADER: header} if header else {}
    assert _route_request(_body(route), headers, settings, None).allow_unrated is expected


def test_allow_unrated_header_must_be_a_boolean(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, example_config_text()), ENVIRON)
    with pytest.raises(InvalidRoute, match="must be true or false") as raised:
        _route_request(_body(None), {ALLOW_UNRATED_HEADER: "maybe"}, settings, None)
    assert raised.value.param == ALLOW_UNRATED_HEADER
