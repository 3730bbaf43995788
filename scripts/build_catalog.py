#!/usr/bin/env python3
"""Generate proxy/catalog/catalog.json from openly licensed price data. Build-time only.

Sources (none is a runtime dependency of MegaRouter):
- prices and context windows: `genai-prices` (MIT, by Pydantic), installed into the build venv:
      .venv/bin/pip install genai-prices==0.2.3
  Its data ships as Python literals (genai_prices/data.py) with Decimal USD-per-MTok prices.
- max output tokens, capabilities, fallback context windows: the `model_prices_and_context_window`
  JSON inside the `litellm` wheel (MIT), fetched without installing it:
      .venv/bin/pip download litellm==1.110.2 --no-deps -d /tmp/litellm-wheel
- quality: public Chatbot Arena (LMArena) Elo snapshots, cited per anchor below and in the file.

Usage: .venv/bin/python scripts/build_catalog.py --litellm-wheel /tmp/litellm-wheel/litellm-*.whl
Prices are converted with Decimal only (proxy/catalog/conversion.py); an inexact price fails the build.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.catalog.conversion import SourceRecord, convert_source_record  # noqa: E402
from proxy.catalog.models import CatalogFile  # noqa: E402

OUTPUT_PATH = ROOT / "proxy" / "catalog" / "catalog.json"

# genai-prices provider id -> (catalog provider name, litellm key prefix).
SOURCE_PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("openai", ""),
    "anthropic": ("anthropic", ""),
    "google": ("google", "gemini/"),
    "deepseek": ("deepseek", "deepseek/"),
    "x-ai": ("xai", "xai/"),
    "mistral": ("mistral", "mistral/"),
    "groq": ("groq", "groq/"),
    "together": ("together", "together_ai/"),
    "fireworks": ("fireworks", "fireworks_ai/accounts/fireworks/models/"),
    "cerebras": ("cerebras", "cerebras/"),
    "moonshotai": ("moonshot", "moonshot/"),
    "zai": ("zai", "zai/"),
    "minimax": ("minimax", "minimax/"),
    "perplexity": ("perplexity", "perplexity/"),
}

# Models that are not text chat or embeddings over a standard API, or not generally available.
EXCLUDED_PATTERN = re.compile(
    r"tts|transcri|whisper|realtime|audio|image|live|ocr|moderation|guard|voxtral|orpheus|search|"
    r"research|computer-use|^ft:|^(ada|babbage|curie|davinci)|text-davinci|instruct$|:free|robotics|"
    r":extended|cyber|rosalind|-vision-|nano-banana|omni|^gpt-3\.5-0301|^claude-v1|^claude-2|"
    r"^gemini-1\.0|^gemini-pro$|^gemini-flash-1\.5|^gemini-pro-1\.5|decider|muse|"
    r"llama-?2|redpajama|alpaca|vicuna|chronos|mythomax|nexusraven|capybara|openorca|"
    r"qwen1\.5|remm|toppy|wizardlm-13b|olmo|codellama|platypus|phi-2|mistral-7b-v0\.1|mixtral-8x7b-v0\.1|"
    r"snorkel|openhermes|gpt-jt|stripedhyena|solar|yi-|gemma-2b|gemma-7b|specdec|preview-tts|"
    r"llama-3\.2-|llama3-|llama-3\.1-405b-reasoning|llama-3\.1-70b-versatile|tool-use-preview|"
    r"mixtral-8x7b-32768|gemma-7b-it|gemma2-9b-it|prompt-guard|tev1",
    re.IGNORECASE,
)
# Google's genai-prices entries also price Anthropic models on Vertex; only Gemini-API models are kept.
GOOGLE_KEEP = re.compile(r"^(gemini|gemma)-", re.IGNORECASE)
EMBEDDING_PATTERN = re.compile(r"embed", re.IGNORECASE)
PRICE_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
}

# Public Chatbot Arena (LMArena) text Elo anchors: (overall Elo, coding-category Elo or None, source key).
ARENA_SOURCES: dict[str, str] = {
    "openlm-2025-07-01": "LMSYS Chatbot Arena full leaderboard, mirror https://openlm.ai/chatbot-arena "
    "(attribution LMSYS, snapshot 2025-07-01; Arena Elo and Coding Elo columns)",
    "openlm-2025-05-05": "mirror https://openlm.ai/chatbot-arena (attribution LMSYS), snapshot 2025-05-05",
    "openlm-2025-02-21": "mirror https://openlm.ai/chatbot-arena (attribution LMSYS), snapshot 2025-02-21",
    "staituned-2025-08-21": "LMArena Text Arena top entries as of 2025-08-21, quoted at "
    "https://staituned.com/learn/expert/imarena-ai-benchmarking-platform",
    "llmreference-2026-05": "Chatbot Arena top-5 preview, window 2026-05-12..21, "
    "https://www.llmreference.com/benchmark/chatbot-arena",
    "localaimaster-2026-06": "LMArena overall #1 'Claude Opus 4.8 ~1510' as of June 2026, quoted at "
    "https://localaimaster.com/blog/lmarena-chatbot-arena-leaderboard",
    "openlm-2024-11-13": "mirror https://openlm.ai/chatbot-arena (attribution LMSYS), snapshot 2024-11-13; "
    "Arena Elo and Coding Elo columns",
    "openlm-2024-09-05": "mirror https://openlm.ai/chatbot-arena (attribution LMSYS), snapshot 2024-09-05; "
    "Arena Elo and Coding Elo columns, and the 'best for model size class' table",
    "openlm-2024-07-22": "mirror https://openlm.ai/chatbot-arena (attribution LMSYS), snapshot 2024-07-22; "
    "Arena Elo and Coding Elo columns",
    "openlm-2024-05-20": "mirror https://openlm.ai/chatbot-arena (attribution LMSYS), snapshot 2024-05-20; "
    "Arena Elo column",
    "aigender-2023-11": "LMSYS Chatbot Arena leaderboard as of November 2023, reproduced at "
    "https://aigender.net/index.php/2023/12/05/chatbot-arena-leaderboard/",
}
# Publication date of each source's figures (the `as_of` of every score citing it).
ARENA_SOURCE_DATES: dict[str, str] = {
    "openlm-2025-07-01": "2025-07-01",
    "openlm-2025-05-05": "2025-05-05",
    "openlm-2025-02-21": "2025-02-21",
    "staituned-2025-08-21": "2025-08-21",
    "llmreference-2026-05": "2026-05-21",
    "localaimaster-2026-06": "2026-06",
    "openlm-2024-11-13": "2024-11-13",
    "openlm-2024-09-05": "2024-09-05",
    "openlm-2024-07-22": "2024-07-22",
    "openlm-2024-05-20": "2024-05-20",
    "aigender-2023-11": "2023-11",
}
# Keys are (catalog provider-independent) upstream model names, matched exactly after lower-casing,
# and also used for the same model served by other hosts (see ANCHOR_ALIASES).
ARENA_ANCHORS: dict[str, tuple[int, int | None, str]] = {
    "claude-opus-4-8": (1510, None, "localaimaster-2026-06"),
    "claude-opus-4-7": (1503, None, "llmreference-2026-05"),
    "claude-opus-4-6": (1501, None, "llmreference-2026-05"),
    "gemini-3.1-pro-preview": (1493, None, "llmreference-2026-05"),
    "gpt-5.5": (1488, None, "llmreference-2026-05"),
    "gpt-5": (1455, None, "staituned-2025-08-21"),
    "claude-opus-4-1": (1439, None, "staituned-2025-08-21"),
    "gemini-2.5-pro": (1473, 1491, "openlm-2025-07-01"),
    "chatgpt-4o-latest": (1428, 1439, "openlm-2025-07-01"),
    "o3": (1426, 1441, "openlm-2025-07-01"),
    "deepseek-r1-0528": (1424, 1437, "openlm-2025-07-01"),
    "grok-3": (1423, 1435, "openlm-2025-07-01"),
    "gemini-2.5-flash": (1418, 1425, "openlm-2025-07-01"),
    "qwen3-235b-a22b": (1367, 1393, "openlm-2025-07-01"),
    "gpt-4.1": (1385, 1391, "openlm-2025-07-01"),
    "deepseek-v3-0324": (1384, 1400, "openlm-2025-07-01"),
    "minimax-m1": (1374, 1373, "openlm-2025-07-01"),
    "claude-opus-4-0": (1372, 1413, "openlm-2025-07-01"),
    "gemma-3-27b-it": (1361, None, "openlm-2025-07-01"),
    "o4-mini": (1352, 1372, "openlm-2025-05-05"),
    "o1": (1350, 1358, "openlm-2025-05-05"),
    "gpt-4.1-mini": (1323, 1361, "openlm-2025-05-05"),
    "gemini-2.0-flash": (1355, 1353, "openlm-2025-05-05"),
    "o3-mini": (1306, 1355, "openlm-2025-02-21"),
    "o1-mini": (1304, 1353, "openlm-2025-02-21"),
    "gemini-2.0-flash-lite": (1309, 1323, "openlm-2025-02-21"),
    "gemini-1.5-pro": (1302, 1291, "openlm-2025-02-21"),
    "claude-3-5-sonnet": (1283, 1326, "openlm-2025-02-21"),
    "gpt-4o-mini": (1273, 1283, "openlm-2025-02-21"),
    "llama-3.3-70b": (1256, None, "openlm-2025-02-21"),
    "o1-preview": (1333, 1354, "openlm-2024-11-13"),
    "gpt-4-turbo": (1256, 1263, "openlm-2024-11-13"),  # gpt-4-turbo = gpt-4-turbo-2024-04-09
    "meta-llama-3.1-405b-instruct": (1266, 1278, "openlm-2024-09-05"),
    "meta-llama-3.1-70b-instruct": (1249, 1251, "openlm-2024-09-05"),
    "meta-llama-3.1-8b-instruct": (1168, None, "openlm-2024-09-05"),
    "claude-3-opus": (1248, 1250, "openlm-2024-09-05"),
    "gemma-2-27b-it": (1218, None, "openlm-2024-09-05"),
    "gpt-4o-2024-05-13": (1287, 1297, "openlm-2024-07-22"),
    "llama-3-70b-instruct": (1207, 1200, "openlm-2024-07-22"),
    "claude-3-sonnet": (1199, None, "openlm-2024-05-20"),
    "claude-3-haiku": (1181, None, "openlm-2024-05-20"),
    "llama-3-8b-instruct": (1154, None, "openlm-2024-05-20"),
    "mixtral-8x22b-instruct-v0.1": (1144, None, "openlm-2024-05-20"),
    "gpt-4": (1165, None, "openlm-2024-05-20"),  # the gpt-4 alias serves gpt-4-0613
    "mistral-7b-instruct-v0.1": (1008, None, "aigender-2023-11"),
}
# Other hosts' names for an anchored model (same weights) -> anchor key.
ANCHOR_ALIASES: dict[str, str] = {
    "deepseek-reasoner": "deepseek-r1-0528",
    "llama-3.3-70b-versatile": "llama-3.3-70b",
    "meta-llama/llama-3.3-70b-instruct-turbo": "llama-3.3-70b",
    "meta-llama/meta-llama-3.3-70b-instruct-turbo": "llama-3.3-70b",
    "claude-3-opus-latest": "claude-3-opus",
    "meta-llama/meta-llama-3.1-405b-instruct-turbo": "meta-llama-3.1-405b-instruct",
    "meta-llama/meta-llama-3.1-70b-instruct-turbo": "meta-llama-3.1-70b-instruct",
    "meta-llama/meta-llama-3.1-8b-instruct-turbo": "meta-llama-3.1-8b-instruct",
    "llama-3.1-8b-instant": "meta-llama-3.1-8b-instruct",
    "meta-llama/llama-3-70b-chat-hf": "llama-3-70b-instruct",
    "meta-llama/meta-llama-3-70b-instruct-turbo": "llama-3-70b-instruct",
    "meta-llama/meta-llama-3-70b-instruct-lite": "llama-3-70b-instruct",
    "meta-llama/llama-3-8b-chat-hf": "llama-3-8b-instruct",
    "meta-llama/meta-llama-3-8b-instruct-turbo": "llama-3-8b-instruct",
    "meta-llama/meta-llama-3-8b-instruct-lite": "llama-3-8b-instruct",
    "mistralai/mixtral-8x22b-instruct-v0.1": "mixtral-8x22b-instruct-v0.1",
    "mistralai/mistral-7b-instruct-v0.1": "mistral-7b-instruct-v0.1",
}
ELO_FLOOR = 1000
ELO_PER_POINT = Decimal("5.5")  # (Elo - 1000) / 5.5: 1510 -> 93, 1273 -> 50, 1256 -> 47.
UNRATED_BASIS = "unrated: no public evaluation figure cited for this model"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--litellm-wheel", type=Path, required=True, help="path to a downloaded litellm wheel"
    )
    parser.add_argument("--date", default=datetime.date.today().isoformat(), help="generation date (ISO)")
    parser.add_argument("--output", type=Path, default=OUTPUT_PATH)
    args = parser.parse_args()
    litellm_version, litellm_table = read_litellm_table(args.litellm_wheel)
    genai_version = metadata.version("genai-prices")
    genai_licence = metadata.metadata("genai-prices")["License-Expression"]
    assert genai_licence == "MIT", f"genai-prices licence changed to {genai_licence!r}: review before use"
    as_of = datetime.date.fromisoformat(args.date)
    entries = []
    for record in iter_source_records(genai_version, litellm_version, litellm_table, as_of):
        entry = convert_source_record(record)
        entry["quality"] = quality_for(entry)
        entries.append(entry)
    entries.sort(key=lambda e: e["id"])
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), "duplicate ids"
    document = envelope(entries, genai_version=genai_version, litellm_version=litellm_version, date=args.date)
    CatalogFile.model_validate_json(json.dumps(document))  # fail the build, not the proxy, on a bad file
    args.output.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    providers = sorted({e["provider"] for e in entries})
    print(
        f"wrote {len(entries)} models from {len(providers)} providers to {args.output}: "
        f"{', '.join(providers)}"
    )


def read_litellm_table(wheel: Path) -> tuple[str, dict[str, Any]]:
    """Return (litellm version, its model table), read straight out of the wheel file."""
    match = re.match(r"litellm-([^-]+)-", wheel.name)
    assert match, f"not a litellm wheel: {wheel}"
    with zipfile.ZipFile(wheel) as archive:
        table: dict[str, Any] = json.loads(
            archive.read("litellm/model_prices_and_context_window_backup.json")
        )
    table.pop("sample_spec", None)
    return match.group(1), table


def iter_source_records(
    genai_version: str, litellm_version: str, litellm_table: Mapping[str, Any], as_of: datetime.date
) -> Iterator[SourceRecord]:
    """Yield one record per kept genai-prices model, joined with its litellm record if one exists."""
    from genai_prices.data import providers

    for source_provider in providers:
        if source_provider.id not in SOURCE_PROVIDERS:
            continue
        provider, litellm_prefix = SOURCE_PROVIDERS[source_provider.id]
        for model in source_provider.models:
            if model.deprecated or EXCLUDED_PATTERN.search(model.id):
                continue
            if provider == "google" and not GOOGLE_KEEP.match(model.id):
                continue
            picked = pick_prices(model.prices, as_of)
            if picked is None:
                continue
            prices, tier_start, time_of_day = picked
            embeddings = bool(EMBEDDING_PATTERN.search(model.id))
            if "input" not in prices or ("output" not in prices and not embeddings):
                continue
            secondary_key, secondary = find_litellm(litellm_table, litellm_prefix, model.id, provider)
            yield SourceRecord(
                provider=provider,
                upstream_model=model.id,
                display_name=model.name or model.id,
                source_ref=f"genai-prices {genai_version}: {source_provider.id}/{model.id}",
                prices_usd_per_mtok=prices,
                context_window_tokens=model.context_window,
                tier_start_tokens=tier_start,
                time_of_day_priced=time_of_day,
                embeddings=embeddings,
                secondary=secondary,
                secondary_ref=f"litellm {litellm_version}: {secondary_key}" if secondary_key else "",
            )


def pick_prices(prices: Any, as_of: datetime.date) -> tuple[dict[str, str], int | None, bool] | None:
    """Choose the price set in force on `as_of`, as decimal strings; None if a price is not per token.

    Conditional prices: the latest start-date variant in force wins; time-of-day variants are folded
    in by taking, per kind, the highest band. Tiered prices: base price, plus the lowest tier start.
    """
    from genai_prices.types import ModelPrice, StartDateConstraint, TieredPrices, TimeOfDateConstraint

    if isinstance(prices, ModelPrice):
        candidates = [prices]
        time_of_day = False
    else:
        dated = [
            c
            for c in prices
            if c.constraint is None
            or (isinstance(c.constraint, StartDateConstraint) and c.constraint.start_date <= as_of)
        ]
        if not dated:
            return None
        candidates = [dated[-1].prices]
        daily = [c.prices for c in prices if isinstance(c.constraint, TimeOfDateConstraint)]
        time_of_day = bool(daily)
        candidates.extend(daily)
    result: dict[str, Decimal] = {}
    tier_start: int | None = None
    for candidate in candidates:
        for source_key, kind in PRICE_KEYS.items():
            value = getattr(candidate, source_key)
            if value is None:
                continue
            if isinstance(value, TieredPrices):
                starts = [tier.start for tier in value.tiers]
                tier_start = min([*starts, tier_start] if tier_start is not None else starts)
                value = value.base
            assert isinstance(value, Decimal), f"unexpected price type {type(value)}"
            result[kind] = max(result.get(kind, value), value)
    return {kind: format(value, "f") for kind, value in result.items()}, tier_start, time_of_day


def find_litellm(
    table: Mapping[str, Any], prefix: str, model_id: str, provider: str
) -> tuple[str, Mapping[str, Any] | None]:
    """Find litellm's record for a model: prefixed key first, then the bare name if its provider agrees."""
    # Same provider only, tolerant of case and of an alias "-latest" suffix; never another host's record.
    names = {model_id, model_id.removesuffix("-latest"), model_id + "-latest"}
    wanted = {(prefix + name).lower() for name in names}
    for key in sorted(table):
        if key.lower() in wanted:
            return key, table[key]
    bare = table.get(model_id)
    if isinstance(bare, dict) and str(bare.get("litellm_provider", "")).startswith(
        {"google": "gemini", "xai": "xai"}.get(provider, provider)
    ):
        return model_id, bare
    return "", None


def quality_for(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Scores 0..100 from a cited Arena Elo anchor, or unrated. Never derived from price."""
    if entry["capabilities"]["embeddings"]:
        return {"rated": False, "basis": "embedding model: chat quality not applicable"}
    name = entry["upstream_model"].lower()
    anchor = ARENA_ANCHORS.get(ANCHOR_ALIASES.get(name, name))
    if anchor is None:
        return {"rated": False, "basis": UNRATED_BASIS}
    elo, coding_elo, source_key = anchor
    overall = elo_to_score(elo)
    # Per task kind only where a per-category figure is published (Arena's coding category); the other
    # kinds have no public per-model figure across the catalog, so they take the overall score.
    scores = dict.fromkeys(("chat", "summarization", "extraction", "code", "math", "reasoning"), overall)
    if coding_elo is not None:
        scores["code"] = elo_to_score(coding_elo)
    basis = (
        f"Arena text Elo {elo}" + (f", coding Elo {coding_elo}" if coding_elo else "") + f" ({source_key})"
    )
    return {
        "rated": True,
        "overall": overall,
        **scores,
        "basis": basis,
        "source": re.findall(r"https://\S+", ARENA_SOURCES[source_key])[0].rstrip(",;"),
        "as_of": ARENA_SOURCE_DATES[source_key],
    }


def elo_to_score(elo: int) -> int:
    """Map an Arena Elo onto 0..100 linearly (see ELO_PER_POINT), clamped."""
    score = int(((Decimal(elo) - ELO_FLOOR) / ELO_PER_POINT).to_integral_value())
    return max(0, min(100, score))


def envelope(
    entries: list[dict[str, Any]], *, genai_version: str, litellm_version: str, date: str
) -> dict[str, Any]:
    """The file around the models; catalog_version is a hash of the model entries themselves."""
    content_hash = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    return {
        "format_version": 1,
        "catalog_version": f"{date}.{content_hash[:16]}",
        "generated_at": date,
        "generator": "scripts/build_catalog.py",
        "price_unit": "nano_usd_per_mtok",
        "sources": [
            {
                "name": "genai-prices",
                "version": genai_version,
                "licence": "MIT",
                "url": "https://github.com/pydantic/genai-prices",
                "retrieved": date,
                "used_for": "prices (input, output, cache read, cache write) and context windows",
            },
            {
                "name": "litellm model_prices_and_context_window_backup.json",
                "version": litellm_version,
                "licence": "MIT",
                "url": "https://github.com/BerriAI/litellm",
                "retrieved": date,
                "used_for": "max output tokens, capabilities (tools, vision, JSON schema, reasoning), "
                "context windows where genai-prices has none",
            },
            *(
                {
                    "name": f"Chatbot Arena Elo: {key}",
                    "version": key.split("-", 1)[1],
                    "licence": "public figures cited",
                    "url": re.findall(r"https://\S+", text)[0],
                    "retrieved": date,
                    "used_for": f"quality anchors: {text}",
                }
                for key, text in ARENA_SOURCES.items()
            ),
        ],
        "methodology": {
            "prices": "Decimal(str(x)) of the source's USD-per-MTok value times 1e9, exact or the build "
            "fails. Missing cached/cache-write prices default to the input price. Tiered prices: base tier, "
            "context window capped at the first tier start. Time-of-day prices: highest band.",
            "limits": "context window from genai-prices, else litellm max_input_tokens, else 8192; "
            "max output "
            "from litellm, else min(context, 8192); each default is noted on the model.",
            "capabilities": "litellm supports_function_calling / supports_vision / "
            "supports_response_schema / "
            "supports_reasoning; reasoning also from the model name; without a litellm record "
            "tools/vision/json_mode are false (conservative). Streaming true for chat models.",
            "quality": "overall = (Arena text Elo - 1000) / 5.5, clamped 0..100, for models with a cited "
            "public Elo (rated=true, with source URL and as_of date; Elo snapshots from different dates are "
            "not perfectly comparable); code = the Arena coding-category Elo mapped the same way where "
            "cited, every other kind = overall (no per-kind public figure). The same weights served by "
            "another host share the figure (ANCHOR_ALIASES). Models without a public figure are "
            "rated=false with no scores: routing uses them only when the caller allows unrated models or "
            "nothing rated fits. No score is derived from price.",
        },
        "models": entries,
    }


if __name__ == "__main__":
    main()
