"""Goal: APGR, CPT and the accuracy curve match the RouteLLM / RouterBench definitions exactly.

Method: a four-row case computed by hand (weak right on rows 0 and 3, strong right on rows 0-2; weak
accuracy 0.5, strong 0.75): the perfect oracle, the random router (expected value) and the anti-router,
plus tie handling and the error cases.
"""

from __future__ import annotations

import pytest

from proxy.routing.evaluation import (
    CurvePoint,
    EvaluationError,
    accuracy_curve,
    evaluate_length_baseline,
    evaluate_random_baseline,
    evaluate_router,
)

WEAK = [True, False, False, True]
STRONG = [True, True, True, False]
ORACLE_SCORES = [0.0, 1.0, 1.0, -1.0]  # strong minus weak correctness


def test_oracle_curve_breakpoints_are_exact() -> None:
    points = accuracy_curve(ORACLE_SCORES, weak_correct=WEAK, strong_correct=STRONG)
    assert points == [
        CurvePoint(0.0, 0.5),
        CurvePoint(0.5, 1.0),
        CurvePoint(0.75, 1.0),
        CurvePoint(1.0, 0.75),
    ]


def test_perfect_oracle() -> None:
    result = evaluate_router(ORACLE_SCORES, weak_correct=WEAK, strong_correct=STRONG)
    # Area = 0.5*(0.5+1)/2 + 0.25*1 + 0.25*(1+0.75)/2 = 0.84375; APGR = (0.84375-0.5)/0.25.
    assert result.apgr == pytest.approx(1.375)
    assert result.cpt50 == pytest.approx(0.125)  # 0.625 reached a quarter of the way along the first segment
    assert result.cpt80 == pytest.approx(0.2)
    assert (result.weak_accuracy, result.strong_accuracy, result.row_count) == (0.5, 0.75, 4)


def test_random_router_is_the_straight_line() -> None:
    result = evaluate_random_baseline(weak_correct=WEAK, strong_correct=STRONG, curve_point_count=5)
    assert result.apgr == pytest.approx(0.5)
    assert result.cpt50 == pytest.approx(0.5)
    assert result.cpt80 == pytest.approx(0.8)
    assert [p.accuracy for p in result.curve] == pytest.approx([0.5, 0.5625, 0.625, 0.6875, 0.75])
    assert [p.strong_share for p in result.curve] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_anti_router_mirrors_the_oracle() -> None:
    result = evaluate_router([-s for s in ORACLE_SCORES], weak_correct=WEAK, strong_correct=STRONG)
    # Area = 0.25*(0.5+0.25)/2 + 0.25*0.25 + 0.5*(0.25+0.75)/2 = 0.40625.
    assert result.apgr == pytest.approx(-0.375)
    assert result.cpt50 == pytest.approx(0.875)
    assert result.cpt80 == pytest.approx(0.95)


def test_ties_count_as_random_order_within_the_tie() -> None:
    tied = evaluate_router([1.0, 1.0, 1.0, 1.0], weak_correct=WEAK, strong_correct=STRONG)
    assert tied.apgr == pytest.approx(0.5)
    assert evaluate_router(
        [7.0, 7.0, 7.0, 0.0], weak_correct=WEAK, strong_correct=STRONG
    ).apgr == pytest.approx(
        # First three rows as one segment from 0.5 to 1.0 over share 0..0.75, then down to 0.75.
        ((0.75 * (0.5 + 1.0) / 2 + 0.25 * (1.0 + 0.75) / 2) - 0.5) / 0.25
    )


def test_length_baseline_sends_longer_prompts_first() -> None:
    result = evaluate_length_baseline(["a", "bbbb", "ccc", "dd"], weak_correct=WEAK, strong_correct=STRONG)
    # Lengths 1, 4, 3, 2: the order is rows 1, 2, 3, 0 = the oracle order with row 0 and 3 swapped.
    points = accuracy_curve([1.0, 4.0, 3.0, 2.0], weak_correct=WEAK, strong_correct=STRONG)
    assert points[2] == CurvePoint(0.5, 1.0)
    assert result.apgr == pytest.approx(
        ((0.25 * 0.625 + 0.25 * 0.875 + 0.25 * 0.875 + 0.25 * 0.75) - 0.5) / 0.25
    )


@pytest.mark.parametrize(
    ("scores", "weak", "strong"),
    [
        ([], [], []),
        ([1.0], [True, False], [True]),
        ([1.0, 2.0], [True, False], [False, False]),  # strong not better: APGR undefined
    ],
)
def test_invalid_data_raises(scores: list[float], weak: list[bool], strong: list[bool]) -> None:
    with pytest.raises(EvaluationError):
        evaluate_router(scores, weak_correct=weak, strong_correct=strong)
