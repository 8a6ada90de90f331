"""The judge's position-swap logic, agreement, calibration and length bias against hand-computed values."""

from __future__ import annotations

import pytest

from llmkit.eval.client import ModelClient
from llmkit.eval.judge import (
    PairItem,
    PairwiseJudge,
    PairwiseJudgment,
    RubricJudge,
    calibration,
    judge_agreement,
    length_bias,
    parse_score,
    parse_verdict,
    resolve_swap,
    summarize_pairwise,
)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("A", "A"),
        ("b", "B"),
        ("Answer B is better", "B"),
        ("It's a tie.", "tie"),
        ("Verdict: A.", "A"),
        ("neither", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    ("original", "swapped", "expected"),
    [
        ("A", "B", ("x", True)),  # x wins in both orders
        ("B", "A", ("y", True)),  # y wins in both orders
        ("tie", "tie", ("tie", True)),
        ("A", "A", (None, False)),  # always the first position: flips
        ("B", "B", (None, False)),  # always the second position: flips
        ("A", "tie", (None, False)),
        (None, "A", (None, False)),
    ],
)
def test_resolve_swap(original, swapped, expected):
    assert resolve_swap(original, swapped) == expected


def _pairs():
    return [
        PairItem("1", "capital of France?", "Paris", "Lyon"),
        PairItem("2", "2 + 2?", "5", "4"),
        PairItem("3", "color of the sky?", "blue", "blue"),
    ]


def test_a_judge_that_always_picks_the_first_answer_flips_every_verdict(scripted):
    judge = PairwiseJudge(ModelClient(scripted(lambda prompt: "A"), "always-a"))
    judgments = judge.judge(_pairs())
    assert all(not j.consistent and j.winner is None for j in judgments)
    summary = summarize_pairwise(judgments)
    assert summary["flip_rate"]["value"] == 1.0 and summary["first_position_preference"] == 1.0
    assert summary["win_rate_x"]["value"] == 0.0 and summary["win_rate_y"]["value"] == 0.0


def _knows_answers(prompt: str) -> str:
    first = prompt.split("[Answer A]\n")[1].split("\n")[0]
    second = prompt.split("[Answer B]\n")[1].split("\n")[0]
    good = {"Paris", "4", "blue"}
    if (first in good) == (second in good):
        return "tie"
    return "A" if first in good else "B"


def test_a_content_judge_survives_the_swap(scripted):
    judgments = PairwiseJudge(ModelClient(scripted(_knows_answers), "knows")).judge(_pairs())
    assert [(j.verdict_original, j.verdict_swapped, j.winner) for j in judgments] == [
        ("A", "B", "x"),
        ("B", "A", "y"),
        ("tie", "tie", "tie"),
    ]
    summary = summarize_pairwise(judgments)
    assert summary["flip_rate"]["value"] == 0.0 and summary["tie_rate"] == pytest.approx(1 / 3)
    assert summary["win_rate_x"]["value"] == pytest.approx(1 / 3)
    assert summary["first_position_preference"] == pytest.approx(0.5)  # A twice, B twice among decided verdicts


def test_log_likelihood_judging_picks_the_likeliest_verdict(tiny_long):
    from llmkit.core.backends import ModelBackend

    backend = ModelBackend(tiny_long)
    judgments = PairwiseJudge(ModelClient(backend, "tiny"), method="loglikelihood").judge(_pairs()[:1])
    assert judgments[0].verdict_original in ("A", "B", "tie") and judgments[0].verdict_swapped in ("A", "B", "tie")


def test_flip_rate_summary_by_hand():
    judgments = [
        PairwiseJudgment("1", "A", "B", "x", True),
        PairwiseJudgment("2", "A", "A", None, False),
        PairwiseJudgment("3", "B", "A", "y", True),
        PairwiseJudgment("4", "A", "A", None, False),
    ]
    summary = summarize_pairwise(judgments)
    assert summary["flip_rate"]["value"] == 0.5 and summary["n"] == 4
    # verdicts shown: A,B,A,A,B,A,A,A -> 6 of 8 pick the first position
    assert summary["first_position_preference"] == pytest.approx(6 / 8)


def test_length_bias_counts_decided_pairs_of_unequal_length():
    winners = ["x", "y", "x", None, "tie", "y"]
    lengths_x = [100, 10, 5, 50, 20, 30]
    lengths_y = [10, 100, 50, 5, 10, 30]  # last pair: equal length, left out
    result = length_bias(winners, lengths_x, lengths_y)
    # decided & unequal: (x,100>10) longer won; (y,100>10) longer won; (x,5<50) shorter won -> 2/3
    assert result["n"] == 3 and result["longer_wins"]["value"] == pytest.approx(2 / 3)


def test_calibration_against_human_labels_by_hand():
    judge = ["x", "x", "y", "y", "x", "flipped"]
    human = ["x", "y", "y", "y", "x", "x"]
    result = calibration(judge, human)
    # categories flipped, x, y. observed agreement 4/6.
    # judge marginals: flipped 1/6, x 3/6, y 2/6 ; human: flipped 0, x 3/6, y 3/6
    # pe = 0 + (3/6)(3/6) + (2/6)(3/6) = 15/36 ; kappa = (4/6 - 15/36) / (1 - 15/36) = 9/21
    assert result["agreement"] == pytest.approx(4 / 6)
    assert result["kappa"] == pytest.approx(9 / 21)


def test_agreement_between_judges():
    result = judge_agreement({"j1": ["x", "y", "x", "tie"], "j2": ["x", "y", "y", "tie"], "j3": ["x", "y", "x", "tie"]})
    assert result["pairs"]["j1 vs j3"]["kappa"] == pytest.approx(1.0)
    # j1 vs j2: po = 3/4; marginals j1: x .5, y .25, tie .25 ; j2: x .25, y .5, tie .25
    pe = 0.5 * 0.25 + 0.25 * 0.5 + 0.25 * 0.25
    assert result["pairs"]["j1 vs j2"]["kappa"] == pytest.approx((0.75 - pe) / (1 - pe))


@pytest.mark.parametrize(
    ("text", "score"), [("Score: 7", 7), ("score=10", 10), ("I give it 3/10", 3), ("Score: 11", None), ("none", None)]
)
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_rubric_judge(scripted):
    judge = RubricJudge(ModelClient(scripted(lambda prompt: "Score: 9" if "Paris" in prompt else "Score: 2"), "rubric"))
    assert judge.score(["capital?", "capital?"], ["Paris", "Lyon"]) == [9, 2]
