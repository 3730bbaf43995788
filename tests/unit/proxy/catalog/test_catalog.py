"""Goal: the packaged catalog is complete, exact and self-consistent, and overrides merge or fail loudly.

Method: load the real packaged catalog.json; check counts, prices and fields over every model; re-run
the build's conversion on source records copied verbatim from genai-prices 0.2.3 / litellm 1.110.2
(so no source package is needed here) and compare with the committed entries; feed override files
(TOML and JSON, valid and broken) through `load_catalog`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from proxy.catalog import (
    TASK_KINDS,
    Catalog,
    CatalogModel,
    CatalogOverrideError,
    InexactPrice,
    UnknownModel,
    UnknownProvider,
    load_catalog,
    nano_usd_per_mtok_from_usd_per_mtok,
    nano_usd_per_mtok_from_usd_per_token,
    provider_api_kind,
    read_packaged_catalog_file,
    usd_per_mtok_from_nano_usd_per_mtok,
)
from proxy.catalog.conversion import SourceRecord, convert_source_record

PRICE_FIELDS = (
    "input_price_nano_usd_per_mtok",
    "output_price_nano_usd_per_mtok",
    "cached_input_price_nano_usd_per_mtok",
    "cache_write_input_price_nano_usd_per_mtok",
)
SOURCE_PRICE_KEYS = {
    "input": "input_price_nano_usd_per_mtok",
    "output": "output_price_nano_usd_per_mtok",
    "cache_read": "cached_input_price_nano_usd_per_mtok",
    "cache_write": "cache_write_input_price_nano_usd_per_mtok",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_catalog_has_at_least_200_models_from_8_providers(catalog: Catalog) -> None:
    assert len(catalog) >= 200
    providers = catalog.providers()
    assert len(providers) >= 8
    for required in ("openai", "anthropic", "google", "deepseek", "xai", "mistral", "groq", "together"):
        assert required in providers, required


def test_meta_llama_and_qwen_are_served_by_hosts(catalog: Catalog) -> None:
    ids = [model.id.lower() for model in catalog]
    assert any("llama" in model_id for model_id in ids)
    assert any("qwen" in model_id for model_id in ids)


def test_every_price_is_a_non_negative_int(catalog: Catalog) -> None:
    for model in catalog:
        for field in PRICE_FIELDS:
            value = getattr(model, field)
            assert type(value) is int, (model.id, field)
            assert value >= 0, (model.id, field)


def test_ids_are_unique_in_the_file() -> None:
    ids = [model.id for model in read_packaged_catalog_file().models]
    assert len(ids) == len(set(ids))


def test_every_model_has_required_fields(catalog: Catalog) -> None:
    for model in catalog:
        assert model.id == f"{model.provider}/{model.upstream_model}"
        assert model.api_kind == provider_api_kind(model.provider)
        assert model.context_window_tokens > 0
        assert 0 < model.max_output_tokens <= model.context_window_tokens
        assert model.quality.basis
        for kind in TASK_KINDS:
            score = model.quality.for_task(kind)
            assert (score is not None) == model.quality.rated
            assert score is None or 0 <= score <= 100
        assert model.source_ref.startswith("genai-prices 0.2.3: ")


def test_quality_comes_from_cited_figures_never_from_price(catalog: Catalog) -> None:
    rated = [model for model in catalog if model.quality.rated]
    assert len(rated) >= 40
    for model in rated:
        assert model.quality.source.startswith("https://")
        assert model.quality.as_of[:4].isdigit()
        assert "Elo" in model.quality.basis
    for model in catalog:
        assert "price" not in model.quality.basis
    # One underlying model rated the same at every host that serves it.
    assert (
        catalog.get("groq/llama-3.3-70b-versatile").quality
        == catalog.get("together/meta-llama/Llama-3.3-70B-Instruct-Turbo").quality
    )
    unrated = catalog.get("openai/gpt-5-mini").quality
    assert not unrated.rated
    assert unrated.overall is None
    assert unrated.for_task("code") is None


def test_an_unrated_model_needs_an_overall_score_to_be_rated_by_an_operator(tmp_path: Path) -> None:
    path = tmp_path / "overrides.toml"
    path.write_text('[[models]]\nid = "openai/gpt-5-mini"\nquality = { code = 80 }\n')
    with pytest.raises(CatalogOverrideError, match="'quality': an unrated model needs 'overall'"):
        load_catalog(path)
    path.write_text('[[models]]\nid = "openai/gpt-5-mini"\nquality = { overall = 70, code = 80 }\n')
    rated = load_catalog(path).get("openai/gpt-5-mini").quality
    assert (rated.rated, rated.overall, rated.code, rated.math) == (True, 70, 80, 70)


def test_embedding_models_are_flagged(catalog: Catalog) -> None:
    embeddings = [model for model in catalog if model.capabilities.embeddings]
    assert embeddings
    assert all("embed" in model.upstream_model for model in embeddings)
    assert not any(model.capabilities.embeddings for model in catalog if "embed" not in model.upstream_model)


def test_source_decimals_convert_exactly_to_every_committed_price(catalog: Catalog) -> None:
    for model in catalog:
        for key, decimal_text in model.source_prices_usd_per_mtok.items():
            expected = int(Decimal(decimal_text) * 1_000_000_000)
            assert getattr(model, SOURCE_PRICE_KEYS[key]) == expected, (model.id, key)


def test_known_model_prices_equal_the_sources_exact_conversion(catalog: Catalog) -> None:
    # genai-prices 0.2.3: gpt-4o-mini input_mtok=Decimal('0.15'), cache_read_mtok=Decimal('0.075'),
    # output_mtok=Decimal('0.6'); no cache write price, so it defaults to the input price.
    model = catalog.get("openai/gpt-4o-mini")
    assert model.input_price_nano_usd_per_mtok == 150_000_000
    assert model.cached_input_price_nano_usd_per_mtok == 75_000_000
    assert model.output_price_nano_usd_per_mtok == 600_000_000
    assert model.cache_write_input_price_nano_usd_per_mtok == 150_000_000


def test_catalog_metadata_names_sources_versions_and_licences(catalog: Catalog) -> None:
    names = {source.name: source for source in catalog.sources}
    assert names["genai-prices"].version == "0.2.3"
    assert names["genai-prices"].licence == "MIT"
    assert "litellm" in catalog.source
    assert catalog.version.startswith(catalog.generated_at)
    assert any(source.name.startswith("Chatbot Arena") for source in catalog.sources)


def test_unknown_model_raises_a_typed_error(catalog: Catalog) -> None:
    with pytest.raises(UnknownModel) as caught:
        catalog.get("nope/does-not-exist")
    assert caught.value.code == "model_not_found"
    assert caught.value.model_id == "nope/does-not-exist"
    assert catalog.find("nope/does-not-exist") is None
    assert "openai/gpt-4o-mini" in catalog


def test_provider_api_kinds() -> None:
    assert provider_api_kind("anthropic") == "anthropic"
    assert provider_api_kind("google") == "gemini"
    for provider in ("openai", "deepseek", "xai", "groq", "mistral", "together", "fireworks", "openrouter"):
        assert provider_api_kind(provider) == "openai"
    with pytest.raises(UnknownProvider):
        provider_api_kind("acme")


# --- the build's conversion, re-run on verbatim source records -----------------------------------

REPRODUCIBLE_RECORDS: list[SourceRecord] = [
    SourceRecord(
        provider="anthropic",
        upstream_model="claude-sonnet-4-5",
        display_name="Claude Sonnet 4.5",
        source_ref="genai-prices 0.2.3: anthropic/claude-sonnet-4-5",
        prices_usd_per_mtok={"input": "3", "output": "15", "cache_read": "0.3", "cache_write": "3.75"},
        context_window_tokens=200_000,
        secondary={
            "max_input_tokens": 200_000,
            "max_output_tokens": 64_000,
            "supports_function_calling": True,
            "supports_vision": True,
            "supports_response_schema": True,
            "supports_reasoning": True,
        },
        secondary_ref="litellm 1.110.2: claude-sonnet-4-5",
    ),
    SourceRecord(
        provider="google",
        upstream_model="gemini-2.5-pro",
        display_name="Gemini 2.5 Pro",
        source_ref="genai-prices 0.2.3: google/gemini-2.5-pro",
        prices_usd_per_mtok={"input": "1.25", "output": "10", "cache_read": "0.125"},
        context_window_tokens=None,
        tier_start_tokens=200_000,
        secondary={
            "max_input_tokens": 1_048_576,
            "max_output_tokens": 65_536,
            "supports_function_calling": True,
            "supports_vision": True,
            "supports_response_schema": True,
            "supports_reasoning": True,
        },
        secondary_ref="litellm 1.110.2: gemini/gemini-2.5-pro",
    ),
    SourceRecord(
        provider="deepseek",
        upstream_model="deepseek-chat",
        display_name="DeepSeek Chat",
        source_ref="genai-prices 0.2.3: deepseek/deepseek-chat",
        prices_usd_per_mtok={"input": "0.27", "output": "1.1", "cache_read": "0.07"},
        context_window_tokens=64_000,
        time_of_day_priced=True,
        secondary={
            "max_input_tokens": 65_536,
            "max_output_tokens": 8_192,
            "supports_function_calling": True,
            "supports_vision": False,
            "supports_response_schema": True,
            "supports_reasoning": False,
        },
        secondary_ref="litellm 1.110.2: deepseek/deepseek-chat",
    ),
]


@pytest.mark.parametrize("record", REPRODUCIBLE_RECORDS, ids=lambda r: f"{r.provider}/{r.upstream_model}")
def test_conversion_reproduces_the_committed_entry(record: SourceRecord) -> None:
    converted = convert_source_record(record)
    committed = next(m for m in read_packaged_catalog_file().models if m.id == converted["id"])
    committed_fields = committed.model_dump(exclude={"quality"})
    committed_fields["notes"] = list(committed_fields["notes"])
    assert converted == committed_fields


def test_conversion_rejects_inexact_source_prices() -> None:
    record = REPRODUCIBLE_RECORDS[0]
    broken = SourceRecord(
        **{**record.__dict__, "prices_usd_per_mtok": {"input": "0.0000000001", "output": "1"}}
    )
    with pytest.raises(InexactPrice):
        convert_source_record(broken)


# --- price conversion --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.15", 150_000_000),
        ("3", 3_000_000_000),
        (3, 3_000_000_000),
        ("0", 0),
        ("0.000000001", 1),
        (Decimal("1.25"), 1_250_000_000),
        ("1E+1", 10_000_000_000),
    ],
)
def test_usd_per_mtok_converts_exactly(value: Any, expected: int) -> None:
    assert nano_usd_per_mtok_from_usd_per_mtok(value) == expected


def test_usd_per_token_float_converts_through_its_decimal_repr() -> None:
    assert nano_usd_per_mtok_from_usd_per_token(1.5e-07) == 150_000_000
    assert nano_usd_per_mtok_from_usd_per_token(7.5e-08) == 75_000_000
    assert nano_usd_per_mtok_from_usd_per_token(3e-06) == 3_000_000_000


@pytest.mark.parametrize("value", ["0.0000000001", "-1", "NaN", "Infinity", "abc", "", True])
def test_bad_prices_are_refused(value: Any) -> None:
    with pytest.raises(InexactPrice):
        nano_usd_per_mtok_from_usd_per_mtok(value)


def test_price_renders_back_to_usd() -> None:
    assert usd_per_mtok_from_nano_usd_per_mtok(150_000_000) == "0.15"
    assert usd_per_mtok_from_nano_usd_per_mtok(3_000_000_000) == "3"
    assert usd_per_mtok_from_nano_usd_per_mtok(0) == "0"


# --- operator overrides ---------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_overrides_update_add_and_remove(tmp_path: Path, catalog: Catalog) -> None:
    path = write(
        tmp_path,
        "overrides.toml",
        """
[[models]]
id = "openai/gpt-4o-mini"
input_usd_per_mtok = "0.2"
quality = { overall = 61, code = 70 }

[[models]]
id = "acme/acme-large"
api_kind = "openai"
input_usd_per_mtok = "1.25"
output_usd_per_mtok = "5"
context_window_tokens = 131072
max_output_tokens = 8192
capabilities = { tools = true }

[[models]]
id = "openai/gpt-4o"
remove = true
""",
    )
    merged = load_catalog(path)
    updated = merged.get("openai/gpt-4o-mini")
    assert updated.input_price_nano_usd_per_mtok == 200_000_000
    assert (
        updated.output_price_nano_usd_per_mtok
        == catalog.get("openai/gpt-4o-mini").output_price_nano_usd_per_mtok
    )
    assert (updated.quality.overall, updated.quality.code, updated.quality.chat) == (61, 70, 61)
    assert updated.quality.rated
    assert updated.quality.source.startswith("operator overrides file")
    added = merged.get("acme/acme-large")
    assert isinstance(added, CatalogModel)
    assert added.upstream_model == "acme-large"
    assert added.cached_input_price_nano_usd_per_mtok == 1_250_000_000
    assert added.capabilities.tools
    assert "openai/gpt-4o" not in merged
    assert len(merged) == len(catalog)
    assert merged.version.startswith(catalog.version + "+overrides.")
    assert "openai/gpt-4o" in catalog, "the packaged catalog must not change"


def test_json_overrides_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "overrides.json",
        json.dumps({"models": [{"id": "anthropic/claude-sonnet-4-5", "output_usd_per_mtok": "14.5"}]}),
    )
    assert (
        load_catalog(path).get("anthropic/claude-sonnet-4-5").output_price_nano_usd_per_mtok == 14_500_000_000
    )


@pytest.mark.parametrize(
    ("body", "message_parts"),
    [
        (
            '[[models]]\nid = "openai/gpt-4o-mini"\ninput_usd_per_mtok = "0.0000000001"\n',
            ["openai/gpt-4o-mini", "input_usd_per_mtok", "whole number"],
        ),
        (
            '[[models]]\nid = "openai/gpt-4o-mini"\noutput_usd_per_mtok = "-1"\n',
            ["openai/gpt-4o-mini", "output_usd_per_mtok", "negative"],
        ),
        (
            '[[models]]\nid = "openai/gpt-4o-mini"\ninput_usd_per_mtok = 0.15\n',
            ["openai/gpt-4o-mini", "input_usd_per_mtok", "string"],
        ),
        ('[[models]]\nid = "openai/gpt-4o-mini"\nprice = "1"\n', ["openai/gpt-4o-mini", "price"]),
        (
            '[[models]]\nid = "acme/new"\ninput_usd_per_mtok = "1"\n',
            ["acme/new", "output_usd_per_mtok", "context_window_tokens"],
        ),
        (
            '[[models]]\nid = "acme/new"\ninput_usd_per_mtok = "1"\noutput_usd_per_mtok = "1"\n'
            "context_window_tokens = 1000\nmax_output_tokens = 100\n",
            ["acme/new", "api_kind"],
        ),
        ('[[models]]\nid = "openai/nope"\nremove = true\n', ["openai/nope", "remove"]),
        (
            '[[models]]\nid = "openai/gpt-4o-mini"\nmax_output_tokens = 999999999\n',
            ["openai/gpt-4o-mini", "max_output_tokens"],
        ),
        (
            '[[models]]\nid = "openai/gpt-4o-mini"\nquality = { overall = 101 }\n',
            ["openai/gpt-4o-mini", "quality"],
        ),
        ('[[models]]\nid = "a/b"\n[[models]]\nid = "a/b"\n', ["a/b", "twice"]),
        ("models = 3\n", ["models"]),
        ("not toml ===", ["TOML"]),
    ],
)
def test_bad_overrides_fail_with_clear_messages(tmp_path: Path, body: str, message_parts: list[str]) -> None:
    path = write(tmp_path, "bad.toml", body)
    with pytest.raises(CatalogOverrideError) as caught:
        load_catalog(path)
    assert caught.value.code == "catalog_override_invalid"
    for part in message_parts:
        assert part in str(caught.value)


def test_missing_override_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogOverrideError, match="cannot read"):
        load_catalog(tmp_path / "absent.toml")
