"""Prompt features that carry across domains: what makes a request demanding, whatever its topic.

The difficulty model (proxy/routing/classifier.py, weights in classifier_model.json) is a logistic
regression over these features. None of them is a topic word: a proof about graphs and a proof about
contracts both ask to *prove*; a greeting is short and opens with "hi" in every domain. That is what
lets the judgement hold on task families the model never saw (checked by leave-one-domain-out in
scripts/train_difficulty.py).

Each feature is scaled to roughly 0..1 (counts are capped) so one L2 penalty suits them all. Pure Python
over compiled regexes, a few tens of microseconds for a typical prompt; imports nothing from the proxy.
"""

from __future__ import annotations

import math
import re

__all__ = ["FEATURE_NAMES", "prompt_features"]


def _words(*alternatives: str) -> re.Pattern[str]:
    """One pattern matching any alternative as a word prefix (so "prov" finds prove, proves, proving)."""
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")")


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_REASONING = _words(
    "prov",
    "proof",
    "derive",
    "deriv",
    "justif",
    "explain why",
    "explain how",
    "analy",
    "evaluat",
    "assess",
    "critiqu",
    "critical",
    "compar",
    "reason",
    "design",
    "architect",
    "model",
    "optimi",
    "implement",
    "formali",
    "verif",
    "demonstrat",
    "determine",
    "reconstruct",
    "synthesi",
    "diagnos",
    "argu",
    "estimat",
    "plan ",
    "propose",
    "devise",
    "build",
    "show that",
    "show why",
    "show how",
)
_CONSTRAINT = _words(
    "must",
    "at least",
    "at most",
    "no more than",
    "exactly",
    "under ",
    "without",
    "each ",
    "every ",
    "while ",
    "ensure",
    "limit",
    "constraint",
    "keep",
    "avoid",
    "preserv",
    "within",
    "never",
    "only ",
    "strict",
    "bound",
    "guarante",
    "toleran",
    "budget",
)
_MULTI_STEP = _words(
    "step",
    "then ",
    "first",
    "finally",
    "sequence",
    "walk through",
    "stage",
    "phase",
    "afterwards",
    "before ",
    "after ",
    "in order",
    "roadmap",
    "checklist",
    "schedule",
)
_RIGOR = _words(
    "rigor",
    "rigour",
    "complete",
    "formal",
    "invariant",
    "correctness",
    "complexity",
    "asymptot",
    "theorem",
    "lemma",
    "edge case",
    "trade-off",
    "tradeoff",
    "failure mode",
    "assumption",
    "in depth",
    "detailed",
    "detail",
    "thorough",
    "exhaustive",
    "systematic",
    "sensitivity",
    "uncertaint",
    "evidence",
    "consisten",
    "scal",
    "robust",
    "concurren",
    "distributed",
    "protocol",
    "algorithm",
    "equilibri",
    "semantic",
)
_SMALL_TALK = re.compile(
    r"^\W*(?:hi|hello|hey|thanks|thank you|thx|cheers|bye|good (?:morning|night|evening|afternoon)"
    r"|ok|okay|cool|nice|great|sure|yes|no|how are you)\b"
)
_TRANSLATION = re.compile(
    r"\btranslat|\bhow (?:do|would) (?:you|i) say\b|\bin (?:french|spanish|german|italian|japanese|"
    r"portuguese|dutch|swedish|chinese|korean|russian|arabic|english)\b|\bwhat does '[^']+' mean"
)
_FORMATTING = _words(
    "capitali",
    "uppercase",
    "lowercase",
    "title case",
    "format",
    "bullet",
    "sort",
    "reformat",
    "fix the typo",
    "spell",
    "remove the",
    "convert",
    "rename",
    "shorten",
    "abbreviat",
    "rewrite",
    "correct the",
    "add a full stop",
    "put these",
)
_SIMPLE_FACT = re.compile(
    r"^\W*(?:what(?:'s| is| are| does| do)?|who|which|when|where|how many|how much|is|are|name|define"
    r"|give me|list|tell me)\b"
)
_BRIEF = _words(
    "in one sentence",
    "one-sentence",
    "one sentence",
    "one-line",
    "one line",
    "one word",
    "one-word",
    "two-word",
    "briefly",
    "tl;dr",
    "quick",
    "short",
    "a synonym",
    "in a word",
    "just give",
)
_MATH_NOTATION = re.compile(
    r"[=^<>\u2264\u2265\u2211\u222b\u221a\u03c0]|\\[a-z]+|\b[a-z]\(\w\)|\d\s*[-+*/]\s*\d"
)
_CODE = re.compile(
    r"```|\bdef \w+\(|\b(?:function|class|fn|func) \w+|[;{}]\s*$|\bimport \w+|#include|"
    r"\b(?:select|insert|update) [^\n]{0,80}? (?:from|into|set)\b|\.[a-z_]\w*\(",
    re.MULTILINE,
)
_CHOICE_LINE = re.compile(r"^\s*\(?[a-eA-E][.)]\s", re.MULTILINE)
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s", re.MULTILINE)

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "sentences",
    "questions",
    "reasoning_verbs",
    "constraints",
    "multi_step",
    "rigor_words",
    "numbers",
    "math_notation",
    "code",
    "list_lines",
    "choice_lines",
    "commas",
    "long_words",
    "small_talk",
    "translation",
    "formatting",
    "simple_fact",
    "brief",
    "short_prompt",
)


# Regex features read only the first and last WINDOW_CHARS characters: instructions sit at the ends of a
# prompt, the middle is pasted material. That bounds the time on long prompts; length is read in full.
WINDOW_CHARS = 600


def _capped(count: int, cap: int) -> float:
    return min(count, cap) / cap


def prompt_features(text: str) -> list[float]:
    """The feature vector of one prompt, in FEATURE_NAMES order, each value in 0..1."""
    full_length = len(text)
    # Whitespace-separated words of the whole text: cheap, and a fair count for the length features.
    word_count = len(text.split())
    if full_length > 2 * WINDOW_CHARS:
        text = f"{text[:WINDOW_CHARS]}\n{text[-WINDOW_CHARS:]}"
    lowered = text.lower()
    words = _WORD.findall(lowered)
    long_words = sum(1 for word in words if len(word) >= 9)
    short = word_count <= 8
    features = [
        min(math.log1p(full_length) / 9.0, 1.0),  # e^9 ~ 8,100 characters
        min(math.log1p(word_count) / 7.0, 1.0),
        _capped(len(_SENTENCE_END.findall(text)), 8),
        _capped(text.count("?"), 4),
        _capped(len(set(_REASONING.findall(lowered))), 5),
        _capped(len(_CONSTRAINT.findall(lowered)), 6),
        _capped(len(_MULTI_STEP.findall(lowered)), 4),
        _capped(len(set(_RIGOR.findall(lowered))), 4),
        _capped(len(_NUMBER.findall(lowered)), 8),
        _capped(len(_MATH_NOTATION.findall(lowered)), 6),
        _capped(len(_CODE.findall(text)), 3),
        _capped(len(_LIST_LINE.findall(text)), 5),
        _capped(len(_CHOICE_LINE.findall(text)), 4),
        _capped(text.count(","), 10),
        long_words / len(words) if words else 0.0,
        1.0 if _SMALL_TALK.search(lowered) is not None and word_count <= 12 else 0.0,
        1.0 if _TRANSLATION.search(lowered) is not None else 0.0,
        1.0 if _FORMATTING.search(lowered) is not None else 0.0,
        1.0 if _SIMPLE_FACT.search(lowered) is not None and word_count <= 14 else 0.0,
        1.0 if _BRIEF.search(lowered) is not None else 0.0,
        1.0 if short else 0.0,
    ]
    assert len(features) == len(FEATURE_NAMES)
    return features
