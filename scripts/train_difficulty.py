#!/usr/bin/env python3
"""Fit the request classifier's difficulty model and write proxy/routing/classifier_model.json.

Data (tests/data/routing/README.md): `dev_requests.jsonl`, everyday requests written for this project in
its own words, each labelled trivial (target 0), medium (0.5: a knowledge question, a short
explanation, a routine function) or demanding (1), and tagged with one of seven domains.

Split (fixed, independent of row order): bucket = int(sha256(prompt)[:8], 16) % 100.
  bucket < HELDOUT_BUCKET_END   held out: never trained or tuned on; the trivial-vs-demanding routing
                                test (tests/unit/proxy/routing/test_routing_property.py) and the cost
                                bench (scripts/bench/routing_cost.py) use only these rows.
  the rest                      training.

Model: logistic regression with soft targets (cross-entropy against 0 / 0.5 / 1; L2; the three labels
weighted to balance) over proxy.routing.features, fitted by Newton's method in pure Python
(deterministic, no dependencies, about a second). The medium rows teach the model where the middle is,
so a knowledge question does not score like a proof.
The L2 strength is chosen by leave-one-domain-out (LODO) on the training rows: for each of the seven
domains, fit on the other six and score that domain's training rows; keep the strongest penalty whose
mean AUC is within LODO_AUC_TOLERANCE of the best. The report then gives, per held-out domain: AUC,
accuracy at 0.5, and the mean probability of its trivial, medium and demanding rows; and, as a family
never seen at all, the APGR on RouteLLM's held-out
MMLU rows (strong vs weak correctness; tests/data/routing/mmlu_heldout.csv) against the random and
prompt-length baselines. MMLU is not used for training or tuning.

Usage: PYTHONPATH=. .venv/bin/python scripts/train_difficulty.py [--write]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.routing.classifier import MODEL_FORMAT_VERSION
from proxy.routing.evaluation import evaluate_length_baseline, evaluate_random_baseline, evaluate_router
from proxy.routing.features import FEATURE_NAMES, prompt_features

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "tests" / "data" / "routing"
DEV_PATH = DATA_DIR / "dev_requests.jsonl"
MMLU_HELDOUT_PATH = DATA_DIR / "mmlu_heldout.csv"
MODEL_PATH = ROOT / "proxy" / "routing" / "classifier_model.json"
HELDOUT_BUCKET_END = 25
SPLIT_DESCRIPTION = "int(sha256(prompt)[:8], 16) % 100 < 25: held out; the rest trains"
TEXT_CHARS_MAX = 6000
L2_CANDIDATES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
NEWTON_ITERATIONS = 30
LODO_AUC_TOLERANCE = 0.005
WEIGHT_DIGITS = 5
MMLU_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MMLU_STRONG = "gpt-4-1106-preview"

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


LABEL_TARGETS = {"trivial": 0.0, "medium": 0.5, "demanding": 1.0}


@dataclass(frozen=True, slots=True)
class DevRow:
    domain: str
    label: str
    prompt: str

    @property
    def target(self) -> float:
        return LABEL_TARGETS[self.label]


def split_bucket(prompt: str) -> int:
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) % 100


def is_heldout(prompt: str) -> bool:
    return split_bucket(prompt) < HELDOUT_BUCKET_END


def load_dev_rows(path: Path = DEV_PATH) -> list[DevRow]:
    rows: list[DevRow] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in (json.loads(line) for line in handle if line.strip()):
            assert record["label"] in LABEL_TARGETS, record
            rows.append(DevRow(record["domain"], record["label"], record["prompt"]))
    assert len({row.prompt for row in rows}) == len(rows), "duplicate prompts in the dev set"
    return rows


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the Hessian is positive definite with L2 > 0)."""
    size = len(vector)
    augmented = [[*row[:], value] for row, value in zip(matrix, vector, strict=True)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(augmented[r][column]))
        augmented[column], augmented[pivot] = augmented[pivot], augmented[column]
        for row in range(column + 1, size):
            factor = augmented[row][column] / augmented[column][column]
            for k in range(column, size + 1):
                augmented[row][k] -= factor * augmented[column][k]
    solution = [0.0] * size
    for row in reversed(range(size)):
        total = augmented[row][size] - sum(augmented[row][k] * solution[k] for k in range(row + 1, size))
        solution[row] = total / augmented[row][row]
    return solution


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))


def fit_logistic(
    xs: Sequence[Sequence[float]], ys: Sequence[float], *, l2: float
) -> tuple[list[float], float]:
    """Weights and bias of a label-balanced, L2-penalised (bias exempt) soft-target logistic regression."""
    label_counts = {y: sum(1 for other in ys if other == y) for y in set(ys)}
    assert 0.0 in label_counts
    assert 1.0 in label_counts
    sample_weights = [len(ys) / (len(label_counts) * label_counts[y]) for y in ys]
    size = len(xs[0]) + 1  # last coefficient is the bias
    beta = [0.0] * size
    for _ in range(NEWTON_ITERATIONS):
        gradient = [l2 * b for b in beta[:-1]] + [0.0]
        hessian = [[0.0] * size for _ in range(size)]
        for index in range(size - 1):
            hessian[index][index] = l2
        for x, y, weight in zip(xs, ys, sample_weights, strict=True):
            row = [*x, 1.0]
            p = _sigmoid(sum(b * v for b, v in zip(beta, row, strict=True)))
            error = weight * (p - y)
            curvature = weight * p * (1.0 - p)
            for i in range(size):
                gradient[i] += error * row[i]
                scaled = curvature * row[i]
                for j in range(i, size):
                    hessian[i][j] += scaled * row[j]
        for i in range(size):
            for j in range(i):
                hessian[i][j] = hessian[j][i]
        hessian[-1][-1] += 1e-9
        step = _solve(hessian, gradient)
        beta = [b - s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-9:
            break
    return beta[:-1], beta[-1]


def predict(weights: Sequence[float], bias: float, x: Sequence[float]) -> float:
    return _sigmoid(bias + sum(w * v for w, v in zip(weights, x, strict=True)))


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a random demanding row outscores a random trivial one (ties count half)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


@dataclass(frozen=True, slots=True)
class DomainResult:
    domain: str
    rows: int
    auc: float
    accuracy: float
    trivial_mean: float
    medium_mean: float
    demanding_mean: float


def leave_one_domain_out(rows: Sequence[DevRow], *, l2: float) -> list[DomainResult]:
    features = {row.prompt: prompt_features(row.prompt) for row in rows}
    results: list[DomainResult] = []
    for domain in sorted({row.domain for row in rows}):
        train = [row for row in rows if row.domain != domain]
        test = [row for row in rows if row.domain == domain]
        weights, bias = fit_logistic([features[r.prompt] for r in train], [r.target for r in train], l2=l2)
        by_label = {
            label: [predict(weights, bias, features[r.prompt]) for r in test if r.label == label]
            for label in LABEL_TARGETS
        }
        # AUC and accuracy over the two ends (trivial vs demanding); the medium mean shows the middle.
        scores = by_label["trivial"] + by_label["demanding"]
        labels = [False] * len(by_label["trivial"]) + [True] * len(by_label["demanding"])
        results.append(
            DomainResult(
                domain=domain,
                rows=len(test),
                auc=auc(scores, labels),
                accuracy=sum((s >= 0.5) == y for s, y in zip(scores, labels, strict=True)) / len(scores),
                trivial_mean=statistics.fmean(by_label["trivial"]),
                medium_mean=statistics.fmean(by_label["medium"]) if by_label["medium"] else math.nan,
                demanding_mean=statistics.fmean(by_label["demanding"]),
            )
        )
    return results


def load_mmlu(path: Path = MMLU_HELDOUT_PATH) -> tuple[list[str], list[bool], list[bool]]:
    prompts: list[str] = []
    weak: list[bool] = []
    strong: list[bool] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            prompts.append(record["prompt"])
            weak.append(record[MMLU_WEAK].strip().lower() in ("true", "1"))
            strong.append(record[MMLU_STRONG].strip().lower() in ("true", "1"))
    return prompts, weak, strong


def model_json(weights: Sequence[float], bias: float, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "text_chars_max": TEXT_CHARS_MAX,
        "kind_rules": KIND_RULES,
        "difficulty": {
            "features": list(FEATURE_NAMES),
            "weights": {
                name: round(weight, WEIGHT_DIGITS)
                for name, weight in zip(FEATURE_NAMES, weights, strict=True)
            },
            "bias": round(bias, WEIGHT_DIGITS),
        },
        "metadata": metadata,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    rows = load_dev_rows()
    training = [row for row in rows if not is_heldout(row.prompt)]
    heldout = [row for row in rows if is_heldout(row.prompt)]
    print(f"dev set: {len(rows)} rows, training {len(training)}, held out {len(heldout)}")
    by_l2: dict[float, list[DomainResult]] = {}
    for l2 in L2_CANDIDATES:
        by_l2[l2] = leave_one_domain_out(training, l2=l2)
        print(f"  L2 {l2:<5} LODO mean AUC {statistics.fmean(r.auc for r in by_l2[l2]):.3f}")
    # All strengths separate the domains nearly perfectly: prefer the strongest penalty within
    # LODO_AUC_TOLERANCE of the best, as smaller weights carry better to prompts unlike the dev set.
    mean_auc = {c: sum(r.auc for r in by_l2[c]) / len(by_l2[c]) for c in L2_CANDIDATES}
    best = max(mean_auc.values())
    l2 = max(c for c in L2_CANDIDATES if mean_auc[c] >= best - LODO_AUC_TOLERANCE)
    lodo = by_l2[l2]
    print(f"chosen L2 {l2}; leave-one-domain-out on the training rows:")
    print("  domain     rows   AUC  acc@0.5  mean P: trivial  medium  demanding")
    for result in lodo:
        print(
            f"  {result.domain:<10} {result.rows:>4} {result.auc:.3f}  {result.accuracy:.3f}"
            f"            {result.trivial_mean:.3f}   {result.medium_mean:.3f}  {result.demanding_mean:.3f}"
        )
    weights, bias = fit_logistic(
        [prompt_features(r.prompt) for r in training], [r.target for r in training], l2=l2
    )
    ends = [r for r in heldout if r.label != "medium"]
    heldout_scores = [predict(weights, bias, prompt_features(r.prompt)) for r in ends]
    heldout_labels = [r.label == "demanding" for r in ends]
    heldout_auc = auc(heldout_scores, heldout_labels)
    heldout_accuracy = sum(
        (s >= 0.5) == y for s, y in zip(heldout_scores, heldout_labels, strict=True)
    ) / len(ends)
    medium_scores = [
        predict(weights, bias, prompt_features(r.prompt)) for r in heldout if r.label == "medium"
    ]
    print(
        f"final model on the held-out dev rows (trivial vs demanding): AUC {heldout_auc:.3f}, "
        f"accuracy@0.5 {heldout_accuracy:.3f}; medium rows mean P {statistics.fmean(medium_scores):.3f}"
    )
    prompts, weak, strong = load_mmlu()
    mmlu_scores = [predict(weights, bias, prompt_features(p)) for p in prompts]
    router = evaluate_router(mmlu_scores, weak_correct=weak, strong_correct=strong)
    length = evaluate_length_baseline(prompts, weak_correct=weak, strong_correct=strong)
    random = evaluate_random_baseline(weak_correct=weak, strong_correct=strong)
    print(
        f"MMLU held-out ({len(prompts)} rows, a family never trained on): APGR {router.apgr:.3f}, "
        f"length baseline {length.apgr:.3f}, random {random.apgr:.3f}"
    )
    for name, weight in sorted(zip(FEATURE_NAMES, weights, strict=True), key=lambda item: -abs(item[1])):
        print(f"  {name:<16} {weight:+.3f}")
    print(f"  bias             {bias:+.3f}")
    metadata = {
        "target": "P(demanding): everyday requests labelled trivial (0) / medium (0.5) / demanding (1)",
        "data": "tests/data/routing/dev_requests.jsonl (written for this project, CC0-1.0)",
        "split": SPLIT_DESCRIPTION,
        "training_rows": len(training),
        "heldout_rows": len(heldout),
        "l2": l2,
        "lodo_auc": {r.domain: round(r.auc, 3) for r in lodo},
        "lodo_mean_auc": round(sum(r.auc for r in lodo) / len(lodo), 3),
        "heldout_auc": round(heldout_auc, 3),
        "mmlu_heldout_apgr": round(router.apgr, 4),
        "mmlu_heldout_apgr_length_baseline": round(length.apgr, 4),
    }
    if args.write:
        MODEL_PATH.write_text(
            json.dumps(model_json(weights, bias, metadata), indent=1, sort_keys=True) + "\n"
        )
        print(f"wrote {MODEL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
