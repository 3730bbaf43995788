"""Request classifier: the task kind and a difficulty score, judged from the chat messages alone.

`auto` routing asks two questions before it ranks deployments: what kind of work is this (chat,
summarization, extraction, code, math, reasoning) and how demanding is it, i.e. how likely a cheap model
is to fall short where a strong one would not. This module answers both in pure Python, offline, in well
under a millisecond, from parameters shipped next to it (`classifier_model.json`, written by
`scripts/train_difficulty.py`).

- The kind comes from hand-written keyword families (also stored in the JSON): there is no labelled data
  for kinds, and a transparent rule is easier to audit than a guess.
- The difficulty is a logistic regression over features that carry across domains
  (proxy/routing/features.py: length, reasoning and design verbs, constraints, multi-step markers, rigor
  words, numbers, maths notation, code, question structure, and the markers of small talk, translation,
  formatting, simple facts and one-line answers). It estimates P(demanding): 0 for a greeting, 1 for a
  proof or a system design. Topic words are deliberately absent: a model scoring prompts by the subjects
  of its tuning data (the previous, MMLU-trained one) gives no signal on words it never saw, and its
  ordering did not carry to other task families. Leave-one-domain-out figures are in the data README.

Imports nothing from the proxy, the ledger or x402: it takes plain OpenAI-format message dicts.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from proxy.routing.features import FEATURE_NAMES, prompt_features

__all__ = [
    "MODEL_FORMAT_VERSION",
    "TASK_KINDS",
    "ClassifierModel",
    "DifficultyWeights",
    "KindRules",
    "TaskProfile",
    "classify_request",
    "classify_text",
    "difficulty_probability",
    "kind_scores",
    "load_classifier_model",
    "messages_text",
    "tokenize",
]

TASK_KINDS = ("chat", "summarization", "extraction", "code", "math", "reasoning")
MODEL_FORMAT_VERSION = 3  # 3: cross-domain feature weights replace MMLU topic terms
MODEL_RESOURCE_NAME = "classifier_model.json"
# Roughly four characters per token for English text in the common BPE vocabularies.
CHARS_PER_TOKEN_ESTIMATE = 4

_WORD_PATTERN = re.compile(r"[a-z]+|[0-9]+")


@dataclass(frozen=True, slots=True)
class TaskProfile:
    """What the router needs to know about a request before choosing a model."""

    kind: str
    # Estimated probability (0..1) that the request is demanding: what routing maps to a needed quality.
    difficulty: float
    prompt_tokens_estimate: int
    image_count: int  # image parts seen: the router needs a vision-capable model when > 0
    kind_scores: Mapping[str, float]
    # The logistic model's linear score before the sigmoid (for explanations and ties).
    difficulty_logit: float


@dataclass(frozen=True, slots=True)
class KindRules:
    """Keyword families deciding the kind: token weights, plus regexes for what words cannot see."""

    keyword_weights: Mapping[str, Mapping[str, float]]  # token -> {kind: weight}
    patterns: tuple[tuple[re.Pattern[str], str, float], ...]  # (regex over lower-case text, kind, weight)
    score_min: float  # below this best score the request is plain chat
    window_chars: int  # patterns see only the first and last window_chars characters


@dataclass(frozen=True, slots=True)
class DifficultyWeights:
    """Logistic regression over proxy.routing.features: P(demanding) = sigmoid(bias + w . features)."""

    weights: tuple[float, ...]  # in FEATURE_NAMES order
    bias: float

    def __post_init__(self) -> None:
        assert len(self.weights) == len(FEATURE_NAMES), "one weight per feature"
        assert all(math.isfinite(weight) for weight in self.weights)
        assert math.isfinite(self.bias)


@dataclass(frozen=True, slots=True)
class ClassifierModel:
    """Parameters of the classifier as loaded from JSON; immutable so one copy can serve every request."""

    difficulty: DifficultyWeights
    kind_rules: KindRules
    text_chars_max: int
    metadata: Mapping[str, Any]

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> ClassifierModel:
        assert data["format_version"] == MODEL_FORMAT_VERSION, "classifier_model.json has an unknown format"
        kinds = data["kind_rules"]
        keyword_weights: dict[str, dict[str, float]] = {}
        patterns: list[tuple[re.Pattern[str], str, float]] = []
        for kind, family in kinds["families"].items():
            assert kind in TASK_KINDS, kind
            for keyword, weight in family["keywords"].items():
                keyword_weights.setdefault(keyword, {})[kind] = float(weight)
            for pattern, weight in family["patterns"]:
                patterns.append((re.compile(pattern, re.MULTILINE), kind, float(weight)))
        rules = KindRules(
            keyword_weights=keyword_weights,
            patterns=tuple(patterns),
            score_min=float(kinds["score_min"]),
            window_chars=int(kinds["window_chars"]),
        )
        difficulty = data["difficulty"]
        names = tuple(difficulty["features"])
        assert names == FEATURE_NAMES, "classifier_model.json was fitted on other features: retrain it"
        model = cls(
            difficulty=DifficultyWeights(
                weights=tuple(float(difficulty["weights"][name]) for name in names),
                bias=float(difficulty["bias"]),
            ),
            kind_rules=rules,
            text_chars_max=int(data["text_chars_max"]),
            metadata=dict(data.get("metadata", {})),
        )
        assert model.text_chars_max > 0
        return model


@functools.cache
def load_classifier_model() -> ClassifierModel:
    """The shipped model, parsed once per process (cached because it is immutable)."""
    text = resources.files("proxy.routing").joinpath(MODEL_RESOURCE_NAME).read_text(encoding="utf-8")
    return ClassifierModel.from_json_dict(json.loads(text))


def messages_text(messages: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """The text a router should judge (system and user turns, in order) and the number of image parts.

    Assistant and tool turns are left out: they describe what was done, not what is asked now.
    """
    texts: list[str] = []
    image_count = 0
    for message in messages:
        if message.get("role") not in ("system", "user", "developer"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                if part.get("type") == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") in ("image_url", "input_image", "image"):
                    image_count += 1
    return "\n".join(texts), image_count


def kind_scores(text: str, tokens: Sequence[str], rules: KindRules) -> dict[str, float]:
    """Score each kind from keyword families; each keyword counts once however often it appears."""
    window = rules.window_chars
    # Instructions sit at either end of a prompt; the middle is material. This bounds the regex work.
    ends = text if len(text) <= 2 * window else f"{text[:window]}\n{text[-window:]}"
    lowered_ends = ends.lower()
    scores = dict.fromkeys(TASK_KINDS, 0.0)
    for token in set(tokens):
        family_weights = rules.keyword_weights.get(token)
        if family_weights is not None:
            for kind, weight in family_weights.items():
                scores[kind] += weight
    for pattern, kind, weight in rules.patterns:
        if pattern.search(lowered_ends) is not None:
            scores[kind] += weight
    return scores


def _choose_kind(scores: Mapping[str, float], score_min: float) -> str:
    # Ties go to the earlier kind in TASK_KINDS order after chat, which keeps the choice deterministic.
    best_kind = "chat"
    best_score = score_min
    for kind in TASK_KINDS[1:]:
        if scores[kind] > best_score:
            best_kind, best_score = kind, scores[kind]
    return best_kind


def tokenize(text: str, *, text_chars_max: int) -> list[str]:
    """Lower-cased words and digit runs of the prompt's last `text_chars_max` characters.

    The window bounds the work on huge prompts; the most recent text carries the question.
    """
    assert text_chars_max > 0
    return _WORD_PATTERN.findall(text[-text_chars_max:].lower())


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp_value = math.exp(value)
    return exp_value / (1.0 + exp_value)


def difficulty_logit(text: str, weights: DifficultyWeights) -> float:
    """The linear score bias + w . features(text); monotone in the probability."""
    return weights.bias + sum(w * x for w, x in zip(weights.weights, prompt_features(text), strict=True))


def difficulty_probability(text: str, weights: DifficultyWeights) -> float:
    """P(demanding) of one prompt text (0..1)."""
    return _sigmoid(difficulty_logit(text, weights))


def classify_text(text: str, model: ClassifierModel, *, image_count: int = 0) -> TaskProfile:
    """Classify one prompt text; `classify_request` is the entry point for chat messages."""
    assert image_count >= 0
    # The most recent text carries the question; the window bounds the work on huge prompts.
    window = text[-model.text_chars_max :]
    tokens = tokenize(window, text_chars_max=model.text_chars_max)
    scores = kind_scores(window, tokens, model.kind_rules)
    kind = _choose_kind(scores, model.kind_rules.score_min)
    logit = difficulty_logit(window, model.difficulty)
    difficulty = _sigmoid(logit)
    assert 0.0 <= difficulty <= 1.0
    tokens_estimate = -(-len(text) // CHARS_PER_TOKEN_ESTIMATE)
    return TaskProfile(
        kind=kind,
        difficulty=difficulty,
        prompt_tokens_estimate=tokens_estimate,
        image_count=image_count,
        kind_scores=scores,
        difficulty_logit=logit,
    )


def classify_request(
    messages: Sequence[Mapping[str, Any]], model: ClassifierModel | None = None
) -> TaskProfile:
    """Judge an OpenAI-format message list (content as a string or a list of parts)."""
    assert isinstance(messages, Sequence)
    text, image_count = messages_text(messages)
    return classify_text(
        text, model if model is not None else load_classifier_model(), image_count=image_count
    )
