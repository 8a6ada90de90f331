"""Scorers and answer extraction: lm-evaluation-harness definitions of acc/acc_norm, matching, self-consistency."""

from __future__ import annotations

import pytest

from llmkit.eval.data import Sample
from llmkit.eval.scoring.extraction import (
    choice_letter,
    extractor,
    marked_number,
    marked_or_last_number,
    normalize_number,
    normalize_text,
)
from llmkit.eval.scoring.scorers import (
    ChoiceScorer,
    MatchScorer,
    SelfConsistencyScorer,
    VerifierScorer,
    subset_majority_accuracy,
)
from llmkit.eval.solvers import majority_vote


def test_acc_and_acc_norm_follow_lm_evaluation_harness():
    sample = Sample("1", {}, 1, ("a", "much longer answer"))
    # acc: argmax(-2.0, -3.0) = 0 (wrong); acc_norm: argmax(-2/1, -3/18) = 1 (right)
    scored = ChoiceScorer().score(sample, {"loglikelihoods": [-2.0, -3.0]})
    assert scored["metrics"] == {"acc": 0.0, "acc_norm": 1.0}


def test_ties_go_to_the_first_choice():
    scored = ChoiceScorer().score(Sample("1", {}, 0, ("x", "y")), {"loglikelihoods": [-1.0, -1.0]})
    assert scored["metrics"]["acc"] == 1.0


@pytest.mark.parametrize(
    ("text", "number"),
    [("so 3 + 4 = 7. The answer is 7.", "7"), ("#### 1,234", "1,234"), ("no mark but 12 and 15", None)],
)
def test_marked_number(text, number):
    assert marked_number(text) == number


def test_flexible_extraction_falls_back_to_the_last_number():
    assert marked_or_last_number("I count 3 apples and $1,200 dollars") == "$1,200"
    assert normalize_number("$1,200") == "1200" and normalize_number("5.50") == "5.5" and normalize_number("x") is None


def test_normalize_text_and_letters():
    assert normalize_text("The  Eiffel Tower!") == "eiffel tower"
    assert choice_letter("I think the answer is (C).") == "C"
    assert extractor("regex:ID-(\\d+)")("ID-1 then ID-22") == "22"


def test_match_scorer_averages_samples():
    sample = Sample("1", {}, "18")
    scored = MatchScorer("marked_or_last_number", "number").score(
        sample, {"completions": ["The answer is 18.", "It is 17", "18.0"]}
    )
    assert scored["metrics"]["exact_match"] == pytest.approx(2 / 3) and scored["detail"]["answers"] == [
        "18",
        "17",
        "18",
    ]


def test_majority_vote_and_ties():
    assert majority_vote(["3", "4", "4", None, "3"]) == "3"  # tie 2-2: the first seen wins
    assert majority_vote([None, None]) is None


def test_subset_majority_accuracy_exact_cases():
    answers = ["1", "1", "2"]
    assert subset_majority_accuracy(answers, "1", 3, draws=10, seed=0) == 1.0
    # k=1: each draw picks one answer; over many draws about 2/3 are right
    assert subset_majority_accuracy(answers, "1", 1, draws=3000, seed=0) == pytest.approx(2 / 3, abs=0.03)


def test_self_consistency_scorer_curve():
    response = {"answers": ["5", "5", "6", "5"], "majority": "5"}
    metrics = SelfConsistencyScorer(curve=(1, 4, 8)).score(Sample("q", {}, "5"), response)["metrics"]
    assert metrics["acc"] == 1.0 and metrics["acc_single"] == 0.75 and metrics["acc@4"] == 1.0
    assert "acc@8" not in metrics and 0.5 < metrics["acc@1"] <= 1.0


def test_verifier_scorer_uses_registered_verifiers():
    scored = VerifierScorer("numeric_match").score(
        Sample("1", {}, "42"), {"completions": ["so the answer is 42", "41"]}
    )
    assert scored["metrics"] == {"pass": 0.5, "score": 0.5}
