"""The official `openai` package's structured outputs (`chat.completions.parse`) through MegaRouter.

Goal: a caller who hands the SDK a pydantic model, as a response_format or as a forced tool, gets back a
parsed instance of it from a model behind each adapter kind, with the simulated providers upstream (the
demo's setup). Method: the real app (router fixture, SQLite) and a funded wallet-bound key; `.parsed` and
`.parsed_arguments` must be instances of the model, which the SDK builds with `model_validate_json`.
"""

from __future__ import annotations

import openai
import pytest
from pydantic import BaseModel, Field

from tests.e2e.api.support import funded_key, openai_client
from tests.fixtures.app import RunningRouter

# Catalog models with JSON mode and tools, one behind each adapter.
CHAT_MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "google/gemini-2.5-flash-lite",
}


class Ingredient(BaseModel):
    name: str
    grams: int = Field(ge=1, le=1000)


class Recipe(BaseModel):
    title: str
    servings: int
    vegetarian: bool
    ingredients: list[Ingredient]
    note: str | None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_parse_response_format(router: RunningRouter, kind: str) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        completion = await client.chat.completions.parse(
            model=CHAT_MODELS[kind],
            messages=[{"role": "user", "content": "A pancake recipe, please."}],
            response_format=Recipe,
            max_tokens=2_000,
        )
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(completion.choices[0].message.parsed, Recipe)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_parse_forced_tool_call(router: RunningRouter, kind: str) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        completion = await client.chat.completions.parse(
            model=CHAT_MODELS[kind],
            messages=[{"role": "user", "content": "Save a pancake recipe."}],
            tools=[openai.pydantic_function_tool(Recipe, name="save_recipe")],
            tool_choice={"type": "function", "function": {"name": "save_recipe"}},
            max_tokens=2_000,
        )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "save_recipe"
    assert isinstance(calls[0].function.parsed_arguments, Recipe)
