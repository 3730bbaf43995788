"""Content parts an adapter cannot carry filter deployments out before anything is held.

Goal: issue 9 item 5: an `input_audio` part sent to an Anthropic or Gemini model made the adapter raise
after the hold (a 500). Method: the table in proxy/routing/requirements.py is checked against the adapters'
own translations, then the filter is run on catalog models of each API kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from proxy.catalog import load_catalog
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.anthropic import anthropic_request
from proxy.providers.errors import UnsupportedRequest
from proxy.providers.gemini import gemini_request
from proxy.routing.requirements import (
    CONTENT_PART_TYPES_CARRIED,
    RequestNeeds,
    RouteRequest,
    filter_deployments,
)

PARTS: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": "hi"},
    "image_url": {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    "input_audio": {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    "file": {"type": "file", "file": {"file_id": "f"}},
}
TRANSLATORS: dict[str, Callable[[ChatCompletionRequest], object]] = {
    "anthropic": lambda request: anthropic_request(request, upstream_model="m", stream=False),
    "gemini": gemini_request,
}


def _request(part: dict[str, Any]) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    )


@pytest.mark.parametrize("api_kind", sorted(TRANSLATORS))
@pytest.mark.parametrize("part_type", sorted(PARTS))
def test_table_matches_what_the_adapter_translates(api_kind: str, part_type: str) -> None:
    carried = CONTENT_PART_TYPES_CARRIED[api_kind]
    assert carried is not None
    translate = TRANSLATORS[api_kind]
    if part_type in carried:
        translate(_request(PARTS[part_type]))
    else:
        with pytest.raises(UnsupportedRequest):
            translate(_request(PARTS[part_type]))


def test_audio_keeps_only_deployments_that_carry_it() -> None:
    catalog = load_catalog()
    models = [model for model in catalog if not model.capabilities.embeddings]
    needs = RequestNeeds(prompt_tokens=10, content_part_types=frozenset({"text", "input_audio"}))
    kept, excluded = filter_deployments(
        models,
        route=RouteRequest(),
        needs=needs,
        providers_available={model.provider for model in models},
        models_allowed=None,
    )
    assert kept
    assert {model.api_kind for model in kept} == {"openai"}
    assert excluded["cannot carry content part input_audio"] == sum(
        1 for model in models if model.api_kind != "openai"
    )
