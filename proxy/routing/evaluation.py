"""Offline router evaluation: accuracy over the strong-call share, APGR and CPT (RouteLLM / RouterBench).

A router gives each prompt a score; sweeping a threshold over the scores sends the highest-scored share of
prompts to the strong model and the rest to the weak one. For each share we know the resulting accuracy
from per-prompt correctness of both models. From that curve:

- APGR (average performance gap recovered) = (area under the curve over share 0..1 - weak accuracy)
  / (strong accuracy - weak accuracy). A random router traces the straight line (0.5); an oracle > 1.
- CPT(x) = the smallest strong-call share whose accuracy recovers x of the gap.

Tied scores carry no order, so the curve is the expected value over every order of a tie: linear across
the tied group. That makes results deterministic, and makes the random baseline (all scores equal) the
exact straight line. Pure computation: no I/O, imports nothing from the rest of the proxy.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CURVE_POINT_COUNT_DEFAULT",
    "CurvePoint",
    "EvaluationError",
    "RouterEvaluation",
    "accuracy_curve",
    "evaluate_length_baseline",
    "evaluate_random_baseline",
    "evaluate_router",
    "length_scores",
]

CURVE_POINT_COUNT_DEFAULT = 21  # shares 0.00, 0.05, ..., 1.00 in reports


class EvaluationError(ValueError):
    """The data cannot be evaluated (empty, mismatched lengths, or no gap between the models)."""

    code = "route_eval_invalid_data"


@dataclass(frozen=True, slots=True)
class CurvePoint:
    strong_share: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class RouterEvaluation:
    """How one router does on one data set (shares and accuracies are fractions of 1)."""

    apgr: float
    cpt50: float
    cpt80: float
    curve: tuple[CurvePoint, ...]
    weak_accuracy: float
    strong_accuracy: float
    row_count: int

    def to_json_dict(self) -> dict[str, object]:
        return {
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "curve": [{"strong_share": p.strong_share, "accuracy": p.accuracy} for p in self.curve],
            "weak_accuracy": self.weak_accuracy,
            "strong_accuracy": self.strong_accuracy,
            "rows": self.row_count,
        }


def _check_rows(
    scores: Sequence[float], weak_correct: Sequence[bool], strong_correct: Sequence[bool]
) -> None:
    if not scores:
        raise EvaluationError("no rows to evaluate")
    if not len(scores) == len(weak_correct) == len(strong_correct):
        raise EvaluationError("scores and correctness columns differ in length")
    if sum(strong_correct) <= sum(weak_correct):
        raise EvaluationError("the strong model is not more accurate than the weak one: APGR is undefined")


def accuracy_curve(
    scores: Sequence[float], *, weak_correct: Sequence[bool], strong_correct: Sequence[bool]
) -> list[CurvePoint]:
    """Exact breakpoints of the piecewise-linear accuracy curve, from share 0 to share 1.

    Prompts are sent to the strong model in decreasing score order; a group of tied scores is one
    straight segment (its expected value under a random order within the tie).
    """
    _check_rows(scores, weak_correct, strong_correct)
    row_count = len(scores)
    order = sorted(range(row_count), key=lambda i: -scores[i])
    correct_count = sum(weak_correct)
    points = [CurvePoint(0.0, correct_count / row_count)]
    start = 0
    while start < row_count:
        end = start
        group_score = scores[order[start]]
        while end < row_count and scores[order[end]] == group_score:
            index = order[end]
            correct_count += int(strong_correct[index]) - int(weak_correct[index])
            end += 1
        points.append(CurvePoint(end / row_count, correct_count / row_count))
        start = end
    assert points[-1].strong_share == 1.0
    assert correct_count == sum(strong_correct)
    return points


def _area_under(points: Sequence[CurvePoint]) -> float:
    return sum(
        (right.strong_share - left.strong_share) * (left.accuracy + right.accuracy) / 2.0
        for left, right in itertools.pairwise(points)
    )


def _share_reaching(points: Sequence[CurvePoint], accuracy_target: float) -> float:
    """The first share at which the piecewise-linear curve reaches the target accuracy.

    Always found for targets up to the strong accuracy, since the curve ends there.
    """
    assert accuracy_target <= points[-1].accuracy
    if points[0].accuracy >= accuracy_target:
        return 0.0
    for left, right in itertools.pairwise(points):
        if right.accuracy >= accuracy_target:
            # The curve rises across this segment (left is below target, right at or above it).
            fraction = (accuracy_target - left.accuracy) / (right.accuracy - left.accuracy)
            return left.strong_share + fraction * (right.strong_share - left.strong_share)
    raise AssertionError("unreachable: the last point has the strong accuracy")


def _accuracy_at(points: Sequence[CurvePoint], share: float) -> float:
    for left, right in itertools.pairwise(points):
        if share <= right.strong_share:
            width = right.strong_share - left.strong_share
            fraction = 0.0 if width == 0 else (share - left.strong_share) / width
            return left.accuracy + fraction * (right.accuracy - left.accuracy)
    return points[-1].accuracy


def evaluate_router(
    scores: Sequence[float],
    *,
    weak_correct: Sequence[bool],
    strong_correct: Sequence[bool],
    curve_point_count: int = CURVE_POINT_COUNT_DEFAULT,
) -> RouterEvaluation:
    """APGR, CPT(50%), CPT(80%) and a sampled curve for a router whose higher score means 'use strong'."""
    assert curve_point_count >= 2
    points = accuracy_curve(scores, weak_correct=weak_correct, strong_correct=strong_correct)
    weak_accuracy = points[0].accuracy
    strong_accuracy = points[-1].accuracy
    gap = strong_accuracy - weak_accuracy
    assert gap > 0
    apgr = (_area_under(points) - weak_accuracy) / gap
    sampled = tuple(
        CurvePoint(share, _accuracy_at(points, share))
        for share in (step / (curve_point_count - 1) for step in range(curve_point_count))
    )
    return RouterEvaluation(
        apgr=apgr,
        cpt50=_share_reaching(points, weak_accuracy + 0.5 * gap),
        cpt80=_share_reaching(points, weak_accuracy + 0.8 * gap),
        curve=sampled,
        weak_accuracy=weak_accuracy,
        strong_accuracy=strong_accuracy,
        row_count=len(scores),
    )


def evaluate_random_baseline(
    *,
    weak_correct: Sequence[bool],
    strong_correct: Sequence[bool],
    curve_point_count: int = CURVE_POINT_COUNT_DEFAULT,
) -> RouterEvaluation:
    """The expected value of a random router: every score tied, so the curve is the straight line."""
    return evaluate_router(
        [0.0] * len(weak_correct),
        weak_correct=weak_correct,
        strong_correct=strong_correct,
        curve_point_count=curve_point_count,
    )


def length_scores(prompts: Sequence[str]) -> list[float]:
    """The 'longer prompt goes to the strong model' baseline: the score is the length in characters."""
    return [float(len(prompt)) for prompt in prompts]


def evaluate_length_baseline(
    prompts: Sequence[str],
    *,
    weak_correct: Sequence[bool],
    strong_correct: Sequence[bool],
    curve_point_count: int = CURVE_POINT_COUNT_DEFAULT,
) -> RouterEvaluation:
    return evaluate_router(
        length_scores(prompts),
        weak_correct=weak_correct,
        strong_correct=strong_correct,
        curve_point_count=curve_point_count,
    )
