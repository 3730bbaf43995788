"""Goal: the request classifier names the obvious kind and orders difficulty sensibly.

Method: clear single-kind prompts for each kind; content as a string and as parts; a hand-built model
to check the difficulty curve is monotone in the topic evidence; and the shipped model's difficulty on
the held-out MMLU rows, which must be higher on average where only the strong model was right, spread
over 0..1 as a percentile, and ordered exactly as the raw probability it calibrates.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import pytest

from proxy.routing.classifier import (
    TASK_KINDS,
    ClassifierModel,
    classify_request,
    classify_text,
    difficulty_percentile,
    load_classifier_model,
    messages_text,
)

HELDOUT_CSV = Path(__file__).resolve().parents[3] / "data" / "routing" / "mmlu_heldout.csv"
WEAK_COLUMN = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_COLUMN = "gpt-4-1106-preview"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hi there! How are you doing today?", "chat"),
        ("Tell me a fun fact about cats.", "chat"),
        (
            "Summarize the following article in three sentences:\n\nThe council met on Tuesday.",
            "summarization",
        ),
        ("TL;DR this thread for me please.", "summarization"),
        ("Extract all the email addresses from this text and return JSON: bob@example.com", "extraction"),
        ("List all the people named in this paragraph: Alice met Bob and Carol in Paris.", "extraction"),
        ("Write a Python function that reverses a linked list.", "code"),
        ("Why does this fail?\n```js\nfunction f(x) { return x.map(y => y * 2) }\n```", "code"),
        ("Fix the bug in my SQL query: SELECT * FROM users WHERE id = ;", "code"),
        ("Solve the equation 3x + 5 = 20 for x.", "math"),
        ("What is the integral of x^2 from 0 to 3?", "math"),
        ("Calculate 17 * 23 + 4.", "math"),
        (
            "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies? Go step by step.",
            "reasoning",
        ),
        (
            "Which of the following caused the fall of Rome?\nA. Plague\nB. Debt\nC. Invasions\nD. All",
            "reasoning",
        ),
    ],
)
def test_clear_examples_get_their_kind(text: str, kind: str) -> None:
    profile = classify_request(user(text))
    assert profile.kind == kind
    assert profile.kind in TASK_KINDS


def test_content_parts_equal_string_content_and_images_are_counted() -> None:
    text = "Write a Python script that parses nginx logs."
    as_string = classify_request(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    )
    as_parts = classify_request(
        [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": "x"}}],
            },
        ]
    )
    assert (as_parts.kind, as_parts.difficulty) == (as_string.kind, as_string.difficulty)
    assert (as_string.image_count, as_parts.image_count) == (0, 1)


def test_assistant_and_tool_turns_are_not_judged() -> None:
    text, image_count = messages_text(
        [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "```python\nprint(1)\n```"},
            {"role": "tool", "content": "42"},
        ]
    )
    assert (text, image_count) == ("hello", 0)


def test_empty_and_huge_requests_are_bounded() -> None:
    empty = classify_request([])
    huge = classify_request(user("lorem ipsum " * 200_000))
    assert empty.kind == "chat"
    assert 0.0 <= empty.difficulty <= 1.0
    assert 0.0 <= huge.difficulty <= 1.0
    assert huge.prompt_tokens_estimate == len("lorem ipsum " * 200_000) // 4


def hand_model(scale: float) -> ClassifierModel:
    shipped = load_classifier_model()
    return ClassifierModel(
        term_values={"hard": 0.5, "easy": -0.5},
        calibration_scale=scale,
        calibration_offset=-1.0,
        kind_rules=shipped.kind_rules,
        text_chars_max=shipped.text_chars_max,
        metadata={},
    )


def test_difficulty_is_monotone_in_topic_evidence() -> None:
    model = hand_model(scale=4.0)
    prompts = ["easy easy easy", "easy plain words", "plain words here", "hard plain words", "hard hard hard"]
    difficulties = [classify_text(prompt, model).difficulty for prompt in prompts]
    assert difficulties == sorted(difficulties)
    assert difficulties[0] < difficulties[-1]


def test_shipped_difficulty_is_higher_where_only_the_strong_model_succeeds() -> None:
    model = load_classifier_model()
    gains: dict[bool, list[float]] = {True: [], False: []}
    with HELDOUT_CSV.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            strong_only = row[STRONG_COLUMN] == "True" and row[WEAK_COLUMN] == "False"
            gains[strong_only].append(classify_text(row["prompt"], model).difficulty)
    assert len(gains[True]) > 100
    assert sum(gains[True]) / len(gains[True]) > 1.1 * sum(gains[False]) / len(gains[False])


def test_shipped_model_metadata_documents_its_split() -> None:
    metadata = load_classifier_model().metadata
    assert "sha256" in metadata["split"]
    assert metadata["heldout_apgr"] > metadata["heldout_apgr_length_baseline"]


def test_difficulty_percentile_is_strictly_increasing_over_all_raw_values() -> None:
    model = load_classifier_model()
    assert len(model.quantile_raw) > 50
    raws = [step / 2_000 for step in range(2_001)]
    percentiles = [difficulty_percentile(raw, model) for raw in raws]
    assert all(left < right for left, right in itertools.pairwise(percentiles))
    assert percentiles[0] > 0.0
    assert percentiles[-1] < 1.0
    assert difficulty_percentile(0.3, hand_model(scale=1.0)) == 0.3  # no map: identity


def test_shipped_difficulty_is_spread_and_ranks_like_the_raw_probability() -> None:
    """Held-out percentiles are close to uniform; their ranking (so APGR) is the raw probability's."""
    model = load_classifier_model()
    with HELDOUT_CSV.open(newline="", encoding="utf-8") as handle:
        profiles = [classify_text(row["prompt"], model) for row in csv.DictReader(handle)]
    ordered = sorted(profile.difficulty for profile in profiles)
    p10, p50, p90 = (ordered[int(share * len(ordered))] for share in (0.1, 0.5, 0.9))
    assert 0.03 < p10 < 0.2
    assert 0.4 < p50 < 0.6
    assert 0.8 < p90 < 0.97
    by_raw = sorted(profiles, key=lambda profile: profile.difficulty_raw)
    assert all(
        left.difficulty <= right.difficulty
        and (left.difficulty_raw == right.difficulty_raw or left.difficulty < right.difficulty)
        for left, right in itertools.pairwise(by_raw)
    )
