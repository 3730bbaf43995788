#!/usr/bin/env python3
"""Time `classify_request` per call on the everyday requests, the held-out MMLU prompts and a few chat shapes.

Speed is measured here rather than asserted in tests (timings are noisy on shared CI machines). Budget:
0.2 ms p50 for a typical prompt (issue 13). Baseline measured in the same run: extracting and lower-casing
the message text and splitting it into words (the least any text classifier does), so the ratio says
what the features and the logistic model add on this machine.
Usage: .venv/bin/python scripts/bench/classifier_speed.py
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from proxy.routing.classifier import classify_request, load_classifier_model, messages_text

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "routing"
HELDOUT_CSV = DATA_DIR / "mmlu_heldout.csv"
DEV_JSONL = DATA_DIR / "dev_requests.jsonl"
BUDGET_P50_US = 200.0
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
    with DEV_JSONL.open(newline="", encoding="utf-8") as handle:
        everyday = [
            [{"role": "user", "content": row["prompt"]}]
            for row in (json.loads(line) for line in handle if line.strip())
        ]
    requests.extend(everyday)
    requests.extend(CHAT_REQUESTS)
    latencies_us: list[float] = []
    baseline_us: list[float] = []
    everyday_us: list[float] = []
    everyday_ids = {id(messages) for messages in everyday}
    for _ in range(ROUND_COUNT):
        for messages in requests:
            started = time.perf_counter()
            text, _images = messages_text(messages)
            text.lower().split()
            baseline_us.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            classify_request(messages, model)
            elapsed = (time.perf_counter() - started) * 1e6
            latencies_us.append(elapsed)
            if id(messages) in everyday_ids:
                everyday_us.append(elapsed)
    latencies_us.sort()
    chars = sorted(len(str(messages[-1]["content"])) for messages in requests)
    print(f"model load: {load_ms:.0f} ms (once per process)")
    print(f"{len(latencies_us)} calls, prompt chars median {chars[len(chars) // 2]}, max {chars[-1]}")
    print(
        f"latency us: median {statistics.median(latencies_us):.0f}, "
        f"p90 {latencies_us[int(0.9 * len(latencies_us))]:.0f}, "
        f"p99 {latencies_us[int(0.99 * len(latencies_us))]:.0f}, max {latencies_us[-1]:.0f}"
    )
    p50 = statistics.median(latencies_us)
    print(
        f"everyday requests only: median {statistics.median(everyday_us):.0f} us; budget p50 "
        f"{BUDGET_P50_US:.0f} us: {'met' if p50 <= BUDGET_P50_US else 'MISSED'} "
        f"(all prompts p50 {p50:.0f} us)"
    )
    print(
        f"baseline (text extraction + lower + split) median {statistics.median(baseline_us):.1f} us; "
        f"classifier / baseline = {p50 / statistics.median(baseline_us):.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
