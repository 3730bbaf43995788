"""Request classifier: the task kind and a difficulty score, judged from the chat messages alone.

`auto` routing asks two questions before it ranks deployments: what kind of work is this (chat,
summarization, extraction, code, math, reasoning) and how likely is a cheap model to get it wrong where a
strong one would get it right. This module answers both in pure Python, offline, in well under a
millisecond, from parameters shipped next to it (`classifier_model.json`, written by
`scripts/train_router.py`).

- The kind comes from hand-written keyword families (also stored in the JSON): there is no labelled data
  for kinds, and a transparent rule is easier to audit than a guess.
- The difficulty comes from a topic score: each word unigram and bigram of the prompt carries a value
  learnt from strong-vs-weak correctness data (the shrunken mean of strong-minus-weak correctness over
  the training prompts containing it); the prompt's score is the mean over its terms, mapped through a
  fitted logistic curve to an estimate of P(weak model fails and strong model succeeds)
  (`TaskProfile.difficulty_raw`). Topic is what
  carries the signal on that data (a cheap model fails on some subjects far more than on others).
  Length and structure features were tried on the validation split: adding length lowered APGR, and a
  separate structural model blended in added at most +0.01 with a blend weight tuned on that same split.
- That probability is well ordered but compressed (most prompts sit near the base rate, ~0.15), so a
  fixed map from it to a needed quality cannot tell prompts apart. `TaskProfile.difficulty` is therefore
  the prompt's difficulty *percentile*: the share of the training prompts whose (out-of-fold) raw
  probability is below this prompt's, read from a monotone quantile map stored in the JSON (~101 knots,
  linear between knots, strictly increasing hyperbolic tails outside them so that no two different raw
  values collapse). 0.5 is a median prompt of the tuning data, 0.9 is harder than nine in ten. The map
  is strictly increasing, so the ranking (and APGR, CPT) is exactly that of the raw probability.

Imports nothing from the proxy, the ledger or x402: it takes plain OpenAI-format message dicts.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "MODEL_FORMAT_VERSION",
    "TASK_KINDS",
    "ClassifierModel",
    "KindRules",
    "TaskProfile",
    "check_quantile_map",
    "classify_request",
    "classify_text",
    "difficulty_percentile",
    "kind_scores",
    "load_classifier_model",
    "messages_text",
    "prompt_terms",
    "tokenize",
    "topic_score",
]

TASK_KINDS = ("chat", "summarization", "extraction", "code", "math", "reasoning")
MODEL_FORMAT_VERSION = 2  # 2: adds difficulty_quantiles (raw probability -> percentile)
MODEL_RESOURCE_NAME = "classifier_model.json"
# Roughly four characters per token for English text in the common BPE vocabularies.
CHARS_PER_TOKEN_ESTIMATE = 4

_WORD_PATTERN = re.compile(r"[a-z]+|[0-9]+")


@dataclass(frozen=True, slots=True)
class TaskProfile:
    """What the router needs to know about a request before choosing a model."""

    kind: str
    # Difficulty percentile (0..1) among the tuning prompts: the calibrated, well-spread score routing uses.
    difficulty: float
    prompt_tokens_estimate: int
    image_count: int  # image parts seen: the router needs a vision-capable model when > 0
    kind_scores: Mapping[str, float]
    # Estimated probability that a weak model fails where a strong one succeeds (0..1, compressed).
    difficulty_raw: float


@dataclass(frozen=True, slots=True)
class KindRules:
    """Keyword families deciding the kind: token weights, plus regexes for what words cannot see."""

    keyword_weights: Mapping[str, Mapping[str, float]]  # token -> {kind: weight}
    patterns: tuple[tuple[re.Pattern[str], str, float], ...]  # (regex over lower-case text, kind, weight)
    score_min: float  # below this best score the request is plain chat
    window_chars: int  # patterns see only the first and last window_chars characters


@dataclass(frozen=True, slots=True)
class ClassifierModel:
    """Parameters of the classifier as loaded from JSON; immutable so one copy can serve every request."""

    term_values: Mapping[str, float]  # unigram "word" or bigram "word word" -> learnt value
    calibration_scale: float  # difficulty = sigmoid(scale * topic_score + offset)
    calibration_offset: float
    kind_rules: KindRules
    text_chars_max: int
    metadata: Mapping[str, Any]
    # Quantile map knots: strictly increasing raw probabilities and their percentiles (both 0..1).
    # Empty: no calibration, difficulty = raw probability (hand-built models in tests).
    quantile_raw: tuple[float, ...] = ()
    quantile_percentile: tuple[float, ...] = ()

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
        calibration = data["calibration"]
        quantiles = data["difficulty_quantiles"]
        model = cls(
            term_values={str(k): float(v) for k, v in data["term_values"].items()},
            calibration_scale=float(calibration["scale"]),
            calibration_offset=float(calibration["offset"]),
            kind_rules=rules,
            text_chars_max=int(data["text_chars_max"]),
            metadata=dict(data.get("metadata", {})),
            quantile_raw=tuple(float(value) for value in quantiles["raw"]),
            quantile_percentile=tuple(float(value) for value in quantiles["percentile"]),
        )
        check_quantile_map(model.quantile_raw, model.quantile_percentile)
        assert model.text_chars_max > 0
        assert model.calibration_scale >= 0, "a negative scale would invert the difficulty order"
        return model


@functools.cache
def load_classifier_model() -> ClassifierModel:
    """The shipped model, parsed once per process (cached because it is immutable and costs ~50 ms)."""
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


def prompt_terms(tokens: Sequence[str]) -> set[str]:
    """Distinct unigrams and bigrams ("word word") of a tokenized prompt: the topic evidence."""
    terms = set(tokens)
    terms.update(f"{left} {right}" for left, right in itertools.pairwise(tokens))
    return terms


def tokenize(text: str, *, text_chars_max: int) -> list[str]:
    """Lower-cased words and digit runs of the prompt's last `text_chars_max` characters.

    The window bounds the work on huge prompts; the most recent text carries the question.
    """
    assert text_chars_max > 0
    return _WORD_PATTERN.findall(text[-text_chars_max:].lower())


def topic_score(terms: set[str], term_values: Mapping[str, float]) -> float:
    """Mean learnt value over the prompt's terms; unknown terms count as zero (no evidence either way)."""
    if not terms:
        return 0.0
    total = 0.0
    for term in terms:
        value = term_values.get(term)
        if value is not None:
            total += value
    return total / len(terms)


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp_value = math.exp(value)
    return exp_value / (1.0 + exp_value)


def check_quantile_map(raw: Sequence[float], percentile: Sequence[float]) -> None:
    """A usable map: equal lengths, both strictly increasing inside (0..1), or empty (identity)."""
    assert len(raw) == len(percentile), "quantile map lengths differ"
    assert len(raw) != 1, "a quantile map needs two knots or none"
    for values in (raw, percentile):
        assert all(0.0 <= value <= 1.0 for value in values), "quantile map outside 0..1"
        assert all(left < right for left, right in itertools.pairwise(values)), "not strictly increasing"


def difficulty_percentile(raw: float, model: ClassifierModel) -> float:
    """The raw probability's percentile among the tuning prompts, by the model's quantile map.

    Linear between knots. Outside them the percentile approaches 0 (or 1) hyperbolically, with the
    length scale of the nearest knot gap (an exponential tail would round to exactly 1.0 in floating
    point), so the map stays strictly increasing over all of 0..1 and a prompt beyond the tuning
    extremes still ranks above (below) the one before it.
    """
    knots, percentiles = model.quantile_raw, model.quantile_percentile
    if not knots:
        return raw
    index = bisect.bisect_right(knots, raw)
    if index == 0:
        scale = knots[1] - knots[0]
        result = percentiles[0] / (1.0 + (knots[0] - raw) / scale)
    elif index == len(knots):
        scale = knots[-1] - knots[-2]
        result = 1.0 - (1.0 - percentiles[-1]) / (1.0 + (raw - knots[-1]) / scale)
    else:
        left, right = knots[index - 1], knots[index]
        fraction = (raw - left) / (right - left)
        result = percentiles[index - 1] + fraction * (percentiles[index] - percentiles[index - 1])
    assert 0.0 <= result <= 1.0
    return result


def classify_text(text: str, model: ClassifierModel, *, image_count: int = 0) -> TaskProfile:
    """Classify one prompt text; `classify_request` is the entry point for chat messages."""
    assert image_count >= 0
    tokens = tokenize(text, text_chars_max=model.text_chars_max)
    scores = kind_scores(text[-model.text_chars_max :], tokens, model.kind_rules)
    kind = _choose_kind(scores, model.kind_rules.score_min)
    score = topic_score(prompt_terms(tokens), model.term_values)
    difficulty_raw = _sigmoid(model.calibration_scale * score + model.calibration_offset)
    difficulty = difficulty_percentile(difficulty_raw, model)
    assert 0.0 <= difficulty_raw <= 1.0
    tokens_estimate = -(-len(text) // CHARS_PER_TOKEN_ESTIMATE)
    return TaskProfile(
        kind=kind,
        difficulty=difficulty,
        prompt_tokens_estimate=tokens_estimate,
        image_count=image_count,
        kind_scores=scores,
        difficulty_raw=difficulty_raw,
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
