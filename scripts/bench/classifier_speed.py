#!/usr/bin/env python3
"""Time `classify_request` per call on the held-out MMLU prompts and a few chat-shaped requests.

Speed is measured here rather than asserted in tests (timings are noisy on shared CI machines).
Usage: .venv/bin/python scripts/bench/classifier_speed.py
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from proxy.routing.classifier import classify_request, load_classifier_model

HELDOUT_CSV = Path(__file__).resolve().parents[2] / "tests" / "data" / "routing" / "mmlu_heldout.csv"
ROUND_COUNT = 3
CHAT_REQUESTS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "hi! how are you today?"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": "Summarize the following article in three sentences: " + "The plan " * 120,
        },
    ],
    [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Fix this bug:\n```python\ndef f(x):\n  return x +\n```"}],
        }
    ],
]


def main() -> int:
    load_started = time.perf_counter()
    model = load_classifier_model()
    load_ms = (time.perf_counter() - load_started) * 1000
    with HELDOUT_CSV.open(newline="", encoding="utf-8") as handle:
        requests = [[{"role": "user", "content": row["prompt"]}] for row in csv.DictReader(handle)]
    requests.extend(CHAT_REQUESTS)
    latencies_us: list[float] = []
    for _ in range(ROUND_COUNT):
        for messages in requests:
            started = time.perf_counter()
            classify_request(messages, model)
            latencies_us.append((time.perf_counter() - started) * 1e6)
    latencies_us.sort()
    chars = sorted(len(str(messages[-1]["content"])) for messages in requests)
    print(f"model load: {load_ms:.0f} ms (once per process)")
    print(f"{len(latencies_us)} calls, prompt chars median {chars[len(chars) // 2]}, max {chars[-1]}")
    print(
        f"latency us: median {statistics.median(latencies_us):.0f}, "
        f"p90 {latencies_us[int(0.9 * len(latencies_us))]:.0f}, "
        f"p99 {latencies_us[int(0.99 * len(latencies_us))]:.0f}, max {latencies_us[-1]:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
