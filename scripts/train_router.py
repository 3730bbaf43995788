#!/usr/bin/env python3
"""Fit the request classifier's difficulty model and write proxy/routing/classifier_model.json.

Data: /work/shared/data/routing/mmlu (RouteLLM's MMLU responses, Apache-2.0): per prompt, whether the weak
model (Mixtral-8x7B-Instruct) and the strong model (GPT-4-1106) answered correctly.

Split (fixed, documented, independent of row order): bucket = int(sha256(prompt)[:8], 16) % 100.
  bucket < 20        held-out test set: never seen by training or tuning; reported once at the end,
                     and copied to tests/data/routing (minus the README's contaminated prompts).
  20 <= bucket < 35  validation: used only to choose hyperparameters (L2 strength, target).
  bucket >= 35       training.
The final model is refitted on training + validation with the chosen hyperparameters.

Model (see proxy/routing/classifier.py): every unigram and bigram seen in >= TERM_DOC_COUNT_MIN training
prompts gets value = sum(gain - mean gain) / (count + prior_strength), gain = strong_correct - weak_correct
(shrunken target encoding: the expected benefit of the strong model on prompts with that term). A prompt's
topic score is the mean value over its terms. A 1-D logistic curve, fitted on out-of-fold topic scores
(5 folds, so the curve sees scores of prompts whose own labels did not shape the values), maps the score
to P(weak wrong and strong right). prior_strength is chosen on the validation split.
Percentile calibration: the same out-of-fold probabilities (of the rows the final model is fitted on)
give the empirical CDF stored as a quantile map of QUANTILE_KNOT_COUNT knots at plotting positions
(k + 0.5) / QUANTILE_KNOT_COUNT; the classifier reports a prompt's percentile on it as `difficulty`.
Out-of-fold, because a prompt's in-sample probability is stretched by its own labels and would make
the map too wide for new prompts. Deterministic: no randomness anywhere. Pure Python, ~30 s.
Tried and rejected on validation: logistic regression over words + length/structure features
(APGR ~0.58-0.63 vs 0.70 here), adding log length to the topic score (lowers APGR), blending in a
structural logistic model (+0.01 at best, with the blend weight tuned on validation itself), and
word trigrams (+0.004, 2x the JSON).

The validation rows (minus the contaminated prompts, like the held-out ones) can be exported too, as
tests/data/routing/mmlu_validation.csv: scripts/bench/routing_cost.py chooses the router's needed-quality
constants (proxy/routing/strategies.py) on them, never on the held-out rows. Note that the shipped
classifier was refitted on training + validation, so its scores on validation rows are in-sample.

Usage: .venv/bin/python scripts/train_router.py [--data DIR] [--export-heldout tests/data/routing]
           [--export-validation tests/data/routing]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.routing.classifier import (
    MODEL_FORMAT_VERSION,
    ClassifierModel,
    classify_text,
    prompt_terms,
    tokenize,
    topic_score,
)
from proxy.routing.evaluation import (
    RouterEvaluation,
    evaluate_length_baseline,
    evaluate_random_baseline,
    evaluate_router,
)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_DEFAULT = Path("/work/shared/data/routing")
MODEL_PATH = ROOT / "proxy" / "routing" / "classifier_model.json"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
HELDOUT_BUCKET_END = 20
VALIDATION_BUCKET_END = 35
SPLIT_DESCRIPTION = "int(sha256(prompt)[:8], 16) % 100: held-out < 20, validation 20..34, training >= 35"
TEXT_CHARS_MAX = 6000
TERM_DOC_COUNT_MIN = 3
# Smaller values are dropped from the JSON: halves its size for -0.003 validation APGR.
TERM_VALUE_ABS_MIN = 0.02
FOLD_COUNT = 5
CALIBRATION_ITERATION_COUNT = 25
QUANTILE_KNOT_COUNT = 101
QUANTILE_DIGITS = 6  # knots rounded in the JSON; equal rounded knots merge (their percentiles averaged)

# Keyword families deciding the request kind. Each keyword counts once; a kind wins with the highest score
# above score_min, else the request is chat. Patterns (lower-case text) catch what word tokens cannot.
KIND_RULES: dict[str, Any] = {
    "score_min": 0.9,
    # Patterns run on the lower-cased first and last window_chars characters only: instructions sit at
    # either end of a prompt, and this bounds the regex work on long prompts. Patterns start with a
    # literal where they can (no leading \b): the regex engine then scans for it fast (~10x).
    "window_chars": 1000,
    "families": {
        "summarization": {
            "keywords": {
                "summarize": 2.0,
                "summarise": 2.0,
                "summary": 1.5,
                "summarizing": 2.0,
                "tldr": 2.0,
                "condense": 1.5,
                "recap": 1.5,
                "synopsis": 1.5,
                "gist": 1.0,
                "abstract": 0.3,
                "shorten": 1.0,
                "bullet": 0.5,
                "highlights": 0.5,
            },
            "patterns": [
                [r"tl;?dr\b", 2.0],
                [r"key (points|takeaways)\b", 1.0],
                [r"in (one|two|three|a few) (sentences?|paragraphs?|words)\b", 1.0],
            ],
        },
        "extraction": {
            "keywords": {
                "extract": 2.0,
                "extracting": 2.0,
                "parse": 1.0,
                "entities": 1.0,
                "fields": 0.7,
                "json": 0.8,
                "yaml": 0.6,
                "csv": 0.6,
                "schema": 0.6,
                "classify": 0.8,
                "categorize": 0.8,
                "label": 0.4,
                "tag": 0.3,
                "emails": 0.5,
                "addresses": 0.4,
                "dates": 0.4,
                "names": 0.3,
            },
            "patterns": [
                [r"(list|find|pull out|identify) (all|every|each) (the )?\w+", 1.2],
                [r"return (only )?(a |the )?(json|list|table)\b", 1.0],
                [r"named entit", 1.5],
            ],
        },
        "code": {
            "keywords": {
                "python": 1.2,
                "javascript": 1.2,
                "typescript": 1.2,
                "java": 0.8,
                "golang": 1.2,
                "rust": 0.6,
                "sql": 1.0,
                "html": 0.8,
                "css": 0.8,
                "bash": 1.0,
                "regex": 1.0,
                "function": 0.6,
                "code": 1.0,
                "coding": 1.0,
                "debug": 1.2,
                "bug": 0.8,
                "compile": 1.0,
                "compiler": 1.0,
                "refactor": 1.5,
                "implement": 0.7,
                "api": 0.5,
                "stacktrace": 1.5,
                "traceback": 1.5,
                "exception": 0.6,
                "script": 0.7,
                "program": 0.7,
                "algorithm": 0.7,
                "def": 0.6,
                "return": 0.3,
                "variable": 0.6,
                "loop": 0.4,
                "array": 0.5,
                "struct": 0.6,
                "npm": 1.0,
                "pip": 0.8,
                "docker": 0.8,
                "git": 0.8,
                "unittest": 1.2,
                "pytest": 1.2,
                "async": 0.6,
                "cpp": 1.0,
                "kotlin": 1.0,
                "swift": 0.5,
                "haskell": 1.0,
                "c": 0.1,
            },
            "patterns": [
                [r"```", 1.5],
                [r"def \w+\(", 1.5],
                [r"(function|class|fn|func) \w+\s*[({<]", 1.2],
                [r"[;{}]\s*$", 0.6],
                [r"import \w+|#include\s*<", 1.2],
                [r"\.[a-z_]\w*\(", 0.5],
                [r"(c\+\+|c#|node\.js)", 1.2],
            ],
        },
        "math": {
            "keywords": {
                "solve": 1.0,
                "equation": 1.2,
                "equations": 1.2,
                "integral": 1.5,
                "derivative": 1.5,
                "calculate": 1.0,
                "compute": 0.8,
                "probability": 1.0,
                "sum": 0.5,
                "product": 0.3,
                "polynomial": 1.2,
                "matrix": 1.0,
                "theorem": 1.0,
                "prove": 0.8,
                "proof": 0.8,
                "algebra": 1.0,
                "geometry": 1.0,
                "triangle": 0.8,
                "prime": 0.8,
                "divisible": 1.0,
                "remainder": 0.8,
                "factor": 0.5,
                "sqrt": 1.2,
                "log": 0.5,
                "sin": 0.8,
                "cos": 0.8,
                "limit": 0.5,
                "variance": 0.8,
                "mean": 0.2,
                "percent": 0.5,
                "fraction": 0.8,
                "ratio": 0.5,
                "arithmetic": 1.0,
                "multiply": 0.8,
                "divide": 0.8,
                "integer": 0.8,
                "integers": 0.8,
                "vector": 0.6,
                "eigenvalue": 1.5,
                "mod": 0.6,
                "modulo": 1.0,
                "gcd": 1.2,
            },
            "patterns": [
                [r"\d+\s*[-+*/^×÷]\s*\d+", 1.0],
                [r"\\(frac|sum|int|sqrt|cdot|le|ge)\b", 1.5],
                [r"\^\s*\d", 0.8],
                [r"[-+]\s*\d+\s*=", 1.0],
                [r"how many\b", 0.5],
            ],
        },
        "reasoning": {
            "keywords": {
                "why": 0.6,
                "explain": 0.5,
                "reason": 0.6,
                "reasoning": 0.8,
                "infer": 0.8,
                "inference": 0.6,
                "logic": 0.8,
                "logical": 0.8,
                "puzzle": 1.0,
                "riddle": 1.0,
                "deduce": 1.0,
                "argument": 0.6,
                "analyze": 0.6,
                "analyse": 0.6,
                "compare": 0.5,
                "evaluate": 0.4,
                "implies": 0.8,
                "conclusion": 0.6,
                "assumption": 0.6,
                "statement": 0.4,
                "consequence": 0.4,
                "hypothesis": 0.4,
                "therefore": 0.5,
                "justify": 0.6,
                "tradeoffs": 0.6,
                "plan": 0.3,
            },
            "patterns": [
                [r"step[- ]by[- ]step\b", 1.0],
                [r"which of the following\b", 1.0],
                [r"^\s*\(?[a-d][.)]\s", 0.5],
                [r"what (would|will) happen\b", 0.6],
                [r"pros and cons\b", 0.8],
                [r"if .+, then\b", 0.5],
            ],
        },
    },
}


@dataclass(frozen=True, slots=True)
class Row:
    prompt: str
    weak_correct: bool
    strong_correct: bool
    source_file: str


def split_bucket(prompt: str) -> int:
    """Deterministic split bucket in 0..99 from the prompt text alone (duplicates land together)."""
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) % 100


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    assert lowered in ("true", "false", "1", "0"), text
    return lowered in ("true", "1")


def load_rows(data_dir: Path) -> list[Row]:
    rows: list[Row] = []
    for path in sorted((data_dir / "mmlu").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                rows.append(
                    Row(
                        record["prompt"],
                        parse_bool(record[WEAK_MODEL]),
                        parse_bool(record[STRONG_MODEL]),
                        path.name,
                    )
                )
    return rows


def load_contaminated(data_dir: Path) -> set[str]:
    prompts: set[str] = set()
    with (data_dir / "mmlu_contaminated_prompts.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                prompts.add(json.loads(line)["eval_prompt"])
    return prompts


QuantileMap = tuple[list[float], list[float]]  # (raw knots, percentiles)


def base_model(
    term_values: dict[str, float] | None = None,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    quantiles: QuantileMap = ([], []),
) -> ClassifierModel:
    return ClassifierModel.from_json_dict(
        model_json(term_values or {}, scale=scale, offset=offset, quantiles=quantiles, metadata={})
    )


def model_json(
    term_values: dict[str, float],
    *,
    scale: float,
    offset: float,
    quantiles: QuantileMap,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "metadata": metadata,
        "text_chars_max": TEXT_CHARS_MAX,
        "kind_rules": KIND_RULES,
        "calibration": {"scale": scale, "offset": offset},
        "difficulty_quantiles": {"raw": quantiles[0], "percentile": quantiles[1]},
        "term_values": term_values,
    }


def fit_quantile_map(raw_values: Sequence[float]) -> QuantileMap:
    """Knots of the empirical CDF: the raw value at each plotting position, order statistics interpolated.

    Plotting positions (k + 0.5) / K keep every percentile strictly inside 0..1, so the classifier's
    tails beyond the first and last knot still have room to stay strictly increasing.
    """
    assert len(raw_values) >= 2
    ordered = sorted(raw_values)
    merged: dict[float, list[float]] = {}
    for k in range(QUANTILE_KNOT_COUNT):
        share = (k + 0.5) / QUANTILE_KNOT_COUNT
        position = share * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        value = ordered[low] + (position - low) * (ordered[high] - ordered[low])
        merged.setdefault(round(value, QUANTILE_DIGITS), []).append(share)
    knots = sorted(merged)
    percentiles = [round(sum(merged[k]) / len(merged[k]), QUANTILE_DIGITS) for k in knots]
    assert len(knots) >= 2
    return knots, percentiles


def row_terms(rows: Sequence[Row]) -> list[set[str]]:
    return [prompt_terms(tokenize(row.prompt, text_chars_max=TEXT_CHARS_MAX)) for row in rows]


def gain(row: Row) -> float:
    return float(row.strong_correct) - float(row.weak_correct)


def fit_term_values(
    rows: Sequence[Row], terms: Sequence[set[str]], *, prior_strength: float
) -> dict[str, float]:
    """Shrunken mean of the centred gain over the prompts containing each term."""
    assert len(rows) == len(terms)
    assert prior_strength > 0
    mean_gain = sum(gain(row) for row in rows) / len(rows)
    sums: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for row, row_term_set in zip(rows, terms, strict=True):
        centred = gain(row) - mean_gain
        for term in row_term_set:
            sums[term] = sums.get(term, 0.0) + centred
        counts.update(row_term_set)
    values = {}
    for term, count in counts.items():
        value = sums[term] / (count + prior_strength)
        if count >= TERM_DOC_COUNT_MIN and abs(value) >= TERM_VALUE_ABS_MIN:
            values[term] = round(value, 4)
    return values


def fit_calibration(scores: Sequence[float], targets: Sequence[float]) -> tuple[float, float]:
    """1-D logistic regression (Newton's method): P(target) = sigmoid(scale * score + offset)."""
    scale, offset = 0.0, 0.0
    for _ in range(CALIBRATION_ITERATION_COUNT):
        g_scale = g_offset = h_ss = h_so = h_oo = 0.0
        for score, label in zip(scores, targets, strict=True):
            predicted = 1.0 / (1.0 + math.exp(-(scale * score + offset)))
            error = predicted - label
            weight = predicted * (1.0 - predicted)
            g_scale += error * score
            g_offset += error
            h_ss += weight * score * score
            h_so += weight * score
            h_oo += weight
        determinant = h_ss * h_oo - h_so * h_so
        assert determinant > 0
        scale -= (h_oo * g_scale - h_so * g_offset) / determinant
        offset -= (h_ss * g_offset - h_so * g_scale) / determinant
    return scale, offset


def out_of_fold_scores(
    rows: Sequence[Row], terms: Sequence[set[str]], *, prior_strength: float
) -> list[float]:
    scores = [0.0] * len(rows)
    for fold in range(FOLD_COUNT):
        inside = [index for index in range(len(rows)) if index % FOLD_COUNT != fold]
        values = fit_term_values(
            [rows[i] for i in inside], [terms[i] for i in inside], prior_strength=prior_strength
        )
        for index in range(fold, len(rows), FOLD_COUNT):
            scores[index] = topic_score(terms[index], values)
    return scores


def fit(rows: Sequence[Row], *, prior_strength: float) -> ClassifierModel:
    terms = row_terms(rows)
    oracle = [float(row.strong_correct and not row.weak_correct) for row in rows]
    scores = out_of_fold_scores(rows, terms, prior_strength=prior_strength)
    scale, offset = fit_calibration(scores, oracle)
    scale, offset = round(scale, 4), round(offset, 4)
    raw = [1.0 / (1.0 + math.exp(-(scale * score + offset))) for score in scores]
    values = fit_term_values(rows, terms, prior_strength=prior_strength)
    return base_model(values, scale=scale, offset=offset, quantiles=fit_quantile_map(raw))


def score_rows(rows: Sequence[Row], model: ClassifierModel) -> list[float]:
    return [classify_text(row.prompt, model).difficulty for row in rows]


def score_rows_raw(rows: Sequence[Row], model: ClassifierModel) -> list[float]:
    return [classify_text(row.prompt, model).difficulty_raw for row in rows]


def spread(values: Sequence[float]) -> str:
    ordered = sorted(values)
    shares = (0.1, 0.5, 0.9, 0.99)
    picked = [ordered[min(len(ordered) - 1, int(share * len(ordered)))] for share in shares]
    return "p10/p50/p90/p99 " + "/".join(f"{value:.3f}" for value in picked)


def evaluate(rows: Sequence[Row], scores: Sequence[float]) -> RouterEvaluation:
    return evaluate_router(
        scores, weak_correct=[r.weak_correct for r in rows], strong_correct=[r.strong_correct for r in rows]
    )


def describe(name: str, result: RouterEvaluation) -> str:
    return f"{name:<8} APGR {result.apgr:.3f}  CPT(50%) {result.cpt50:.3f}  CPT(80%) {result.cpt80:.3f}"


def export_split(rows: Sequence[Row], data_dir: Path, out_dir: Path, *, file_name: str) -> None:
    """Write one split as `prompt, weak correct, strong correct` (the source's columns) plus the LICENSE."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / file_name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", WEAK_MODEL, STRONG_MODEL])
        for row in rows:
            writer.writerow([row.prompt, row.weak_correct, row.strong_correct])
    shutil.copyfile(data_dir / "LICENSE", out_dir / "LICENSE")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA_DIR_DEFAULT)
    parser.add_argument("--export-heldout", type=Path, default=None)
    parser.add_argument("--export-validation", type=Path, default=None)
    parser.add_argument("--prior-strengths", type=float, nargs="*", default=[5.0, 20.0, 50.0])
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = load_rows(args.data)
    contaminated = load_contaminated(args.data)
    heldout = [
        r for r in rows if split_bucket(r.prompt) < HELDOUT_BUCKET_END and r.prompt not in contaminated
    ]
    validation = [r for r in rows if HELDOUT_BUCKET_END <= split_bucket(r.prompt) < VALIDATION_BUCKET_END]
    # Exported the way the held-out rows are (contaminated prompts dropped), so that the two CSVs in
    # tests/data/routing describe the same population; training above still uses every validation row.
    validation_export = [r for r in validation if r.prompt not in contaminated]
    training = [r for r in rows if split_bucket(r.prompt) >= VALIDATION_BUCKET_END]
    print(
        f"rows {len(rows)}: training {len(training)}, validation {len(validation)}, held-out {len(heldout)}"
    )
    best: tuple[float, float] | None = None
    for prior_strength in args.prior_strengths:
        result = evaluate(validation, score_rows(validation, fit(training, prior_strength=prior_strength)))
        print(f"validation prior_strength={prior_strength:g}: {describe('router', result)}", flush=True)
        if best is None or result.apgr > best[0]:
            best = (result.apgr, prior_strength)
    assert best is not None
    prior_strength = best[1]
    final = fit([*training, *validation], prior_strength=prior_strength)
    heldout_result = evaluate(heldout, score_rows(heldout, final))
    prompts = [r.prompt for r in heldout]
    weak = [r.weak_correct for r in heldout]
    strong = [r.strong_correct for r in heldout]
    random_result = evaluate_random_baseline(weak_correct=weak, strong_correct=strong)
    length_result = evaluate_length_baseline(prompts, weak_correct=weak, strong_correct=strong)
    heldout_raw = score_rows_raw(heldout, final)
    raw_result = evaluate(heldout, heldout_raw)
    for name, result in (
        ("router", heldout_result),
        ("raw", raw_result),
        ("random", random_result),
        ("length", length_result),
    ):
        print(f"held-out {describe(name, result)}")
    # The percentile map is strictly increasing, so it must not change the held-out ranking.
    assert abs(raw_result.apgr - heldout_result.apgr) < 1e-9
    print(f"held-out difficulty_raw {spread(heldout_raw)}")
    print(f"held-out difficulty (percentile) {spread(score_rows(heldout, final))}")
    metadata = {
        "source": "lm-sys/RouteLLM routellm/evals/mmlu/responses (Apache-2.0), via /work/shared/data/routing",
        "weak_model": WEAK_MODEL,
        "strong_model": STRONG_MODEL,
        "split": SPLIT_DESCRIPTION,
        "target": "P(weak wrong and strong right)",
        "difficulty": "percentile of the raw probability among the out-of-fold training probabilities",
        "prior_strength": prior_strength,
        "validation_apgr": round(best[0], 4),
        "training_rows": len(training) + len(validation),
        "heldout_rows": len(heldout),
        "heldout_apgr": round(heldout_result.apgr, 4),
        "heldout_apgr_length_baseline": round(length_result.apgr, 4),
    }
    document = model_json(
        dict(final.term_values),
        scale=final.calibration_scale,
        offset=final.calibration_offset,
        quantiles=(list(final.quantile_raw), list(final.quantile_percentile)),
        metadata=metadata,
    )
    MODEL_PATH.write_text(json.dumps(document, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {MODEL_PATH} ({len(final.term_values)} term values) in {time.monotonic() - started:.1f} s")
    if args.export_heldout is not None:
        export_split(heldout, args.data, args.export_heldout, file_name="mmlu_heldout.csv")
    if args.export_validation is not None:
        export_split(validation_export, args.data, args.export_validation, file_name="mmlu_validation.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
