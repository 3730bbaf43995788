"""Goal: the request classifier names the obvious kind and orders difficulty sensibly.

Method: clear single-kind prompts for each kind; content as a string and as parts; a hand-built model
to check the difficulty is monotone in a feature's evidence; and the shipped model on the held-out rows
of the project's labelled everyday requests (never trained on): demanding ones score above trivial ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.routing.classifier import (
    TASK_KINDS,
    ClassifierModel,
    DifficultyWeights,
    classify_request,
    classify_text,
    load_classifier_model,
    messages_text,
)
from proxy.routing.features import FEATURE_NAMES, prompt_features
from tests.fixtures.routing_data import heldout_dev_requests


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


def hand_model(feature: str, weight: float) -> ClassifierModel:
    shipped = load_classifier_model()
    weights = tuple(weight if name == feature else 0.0 for name in FEATURE_NAMES)
    return ClassifierModel(
        difficulty=DifficultyWeights(weights=weights, bias=-1.0),
        kind_rules=shipped.kind_rules,
        text_chars_max=shipped.text_chars_max,
        metadata={},
    )


def test_difficulty_is_monotone_in_a_features_evidence() -> None:
    model = hand_model("reasoning_verbs", 4.0)
    prompts = [
        "hello there",
        "prove it",
        "prove and derive it",
        "prove, derive and analyse it",
        "prove, derive, analyse and justify it, then design a fix",
    ]
    difficulties = [classify_text(prompt, model).difficulty for prompt in prompts]
    assert difficulties == sorted(difficulties)
    assert difficulties[0] < difficulties[-1]


def test_features_are_bounded_for_any_text() -> None:
    for text in ("", "hi", "?" * 10_000, "prove " * 5_000, "```\ndef f(x):\n  return x;\n```", "A. x\nB. y"):
        features = prompt_features(text)
        assert len(features) == len(FEATURE_NAMES)
        assert all(0.0 <= value <= 1.0 for value in features), text[:20]


def test_shipped_difficulty_separates_held_out_trivial_and_demanding_requests() -> None:
    model = load_classifier_model()
    scores: dict[bool, list[float]] = {True: [], False: []}
    for row in heldout_dev_requests():
        if row.label != "medium":
            scores[row.label == "demanding"].append(classify_text(row.prompt, model).difficulty)
    assert len(scores[True]) >= 30
    assert len(scores[False]) >= 30
    pairs = [(d, t) for d in scores[True] for t in scores[False]]
    auc = sum(1.0 if d > t else 0.5 if d == t else 0.0 for d, t in pairs) / len(pairs)
    assert auc >= 0.9
    assert sum(d >= 0.5 for d in scores[True]) >= 0.8 * len(scores[True])
    assert sum(t < 0.5 for t in scores[False]) >= 0.8 * len(scores[False])


def test_shipped_model_metadata_documents_its_split_and_leave_one_domain_out_figures() -> None:
    metadata = load_classifier_model().metadata
    assert "sha256" in metadata["split"]
    assert len(metadata["lodo_auc"]) >= 5
    assert metadata["lodo_mean_auc"] >= 0.9
