#!/usr/bin/env python3
"""Re-apply the cited quality figures of scripts/build_catalog.py to the packaged catalog.json.

Prices and limits stay exactly as built (no network, no price sources needed): only each model's
`quality`, the Arena source list and the quality methodology are rewritten, and the catalog version is
re-hashed. Use it after editing ARENA_ANCHORS / ANCHOR_ALIASES / ARENA_SOURCES in build_catalog.py.

Usage: .venv/bin/python scripts/rate_catalog.py [--retrieved YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOG_PATH = ROOT / "proxy" / "catalog" / "catalog.json"


def _build_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("build_catalog", ROOT / "scripts" / "build_catalog.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--retrieved", default=datetime.date.today().isoformat(), help="date quality sources were read"
    )
    args = parser.parse_args()
    build = _build_module()
    document = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    entries = document["models"]
    for entry in entries:
        entry["quality"] = build.quality_for(entry)
    old_sources = {source["name"]: source for source in document["sources"]}
    versions = {source["name"]: source["version"] for source in document["sources"]}
    rebuilt = build.envelope(
        entries,
        genai_version=versions["genai-prices"],
        litellm_version=versions["litellm model_prices_and_context_window_backup.json"],
        date=document["generated_at"],
    )
    for source in rebuilt["sources"]:
        previous = old_sources.get(source["name"])
        # Price sources keep their retrieval date; quality sources first cited now get today's.
        source["retrieved"] = previous["retrieved"] if previous else args.retrieved
    rebuilt["generator"] = "scripts/build_catalog.py (quality re-applied by scripts/rate_catalog.py)"
    CATALOG_PATH.write_text(json.dumps(rebuilt, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    rated = sum(1 for entry in entries if entry["quality"]["rated"])
    print(f"{rated} of {len(entries)} models rated from cited figures; the rest unrated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
