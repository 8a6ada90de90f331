"""Bootstrap, paired bootstrap, McNemar and Cohen's kappa against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from llmkit.core.errors import InvalidParameterError
from llmkit.eval import cohen_kappa
from llmkit.eval.errors import EvalError
from llmkit.eval.judge import judge_agreement
from llmkit.eval.stats import bootstrap, mcnemar, paired_bootstrap, percentile_interval


def test_bootstrap_with_given_resamples_matches_hand_computation():
    values = [1.0, 0.0, 1.0, 1.0]  # mean 0.75
    indices = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 2, 3], [1, 1, 0, 2], [3, 2, 1, 1]])
    # resample means: 1.0, 0.0, 0.75, 0.5, 0.5 -> sorted 0, .5, .5, .75, 1
    # numpy linear percentiles: 2.5% -> 0 + 0.1 * 0.5 = 0.05 ; 97.5% -> 0.75 + 0.9 * 0.25 = 0.975
    estimate = bootstrap(values, indices=indices)
    assert estimate.value == 0.75 and estimate.n == 4
    assert estimate.low == pytest.approx(0.05) and estimate.high == pytest.approx(0.975)


def test_percentile_interval_by_hand():
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([0.0, 1.0]), confidence=0.5) == pytest.approx((0.25, 0.75))


def test_bootstrap_of_a_constant_has_a_zero_width_interval():
    estimate = bootstrap([0.3] * 50)
    assert (estimate.value, estimate.low, estimate.high) == pytest.approx((0.3, 0.3, 0.3))


def test_bootstrap_ci_of_a_proportion_is_close_to_the_normal_approximation():
    values = [1.0] * 300 + [0.0] * 700
    estimate = bootstrap(values)
    half_width = 1.96 * math.sqrt(0.3 * 0.7 / 1000)
    assert estimate.low == pytest.approx(0.3 - half_width, abs=0.006)
    assert estimate.high == pytest.approx(0.3 + half_width, abs=0.006)


def test_bootstrap_is_reproducible_for_a_seed():
    values = np.random.default_rng(1).random(40)
    assert bootstrap(values, seed=3) == bootstrap(values, seed=3)


def test_paired_bootstrap_resamples_item_differences():
    a, b = [1, 0, 1, 0], [1, 1, 1, 0]  # differences 0, 1, 0, 0 -> mean 0.25
    indices = np.array([[1, 1, 1, 1], [0, 2, 3, 0], [1, 0, 0, 0]])  # means 1.0, 0.0, 0.25
    estimate = paired_bootstrap(a, b, indices=indices)
    assert estimate.value == 0.25
    # sorted 0, 0.25, 1 ; 2.5% -> 0.05 * 0.25 = 0.0125 ; 97.5% -> 0.25 + 0.95 * 0.75 = 0.9625
    assert estimate.low == pytest.approx(0.0125) and estimate.high == pytest.approx(0.9625)


def test_paired_bootstrap_needs_equal_lengths():
    with pytest.raises(EvalError, match="two equal"):
        paired_bootstrap([1, 0], [1])


def test_mcnemar_by_hand():
    a = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 3
    b = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 3
    result = mcnemar(a, b)
    assert (result.b, result.c) == (10, 2)
    # exact: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096
    assert result.exact_p == pytest.approx(158 / 4096)
    # chi2 with continuity correction: (|10 - 2| - 1)^2 / 12 = 49 / 12 ; p = P(chi2_1 > 4.0833) = 0.04331
    assert result.chi2 == pytest.approx(49 / 12)
    assert result.chi2_p == pytest.approx(0.043308, abs=1e-5)


def test_mcnemar_without_discordant_pairs_is_p_one():
    assert mcnemar([True, False], [True, False]).exact_p == 1.0


def test_cohen_kappa_by_hand():
    # confusion [[20, 5], [10, 15]]: po = 35/50 = 0.7; pe = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_of_perfect_and_chance_agreement():
    assert cohen_kappa([1, 2, 3, 1], [1, 2, 3, 1]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)


def test_quadratic_weighted_kappa_by_hand():
    # labels 0..2; pairs (0,0), (1,2), (2,2), (0,1): weights d^2/(k-1)^2 with k=3
    a, b = [0, 1, 2, 0], [0, 2, 2, 1]
    # observed disagreement: (0 + 0.25 + 0 + 0.25) / 4 = 0.125
    # marginals a: [.5, .25, .25]; b: [.25, .25, .5]
    # expected disagreement = sum_ij pa_i pb_j w_ij = 0.5*(0.25*0.25 + 0.5*1) + 0.25*(0.25*0.25 + 0.5*0.25) + 0.25*(0.25*1 + 0.25*0.25)
    expected = 0.5 * (0.0625 + 0.5) + 0.25 * (0.0625 + 0.125) + 0.25 * (0.25 + 0.0625)
    assert cohen_kappa(a, b, categories=[0, 1, 2], weights="quadratic") == pytest.approx(1 - 0.125 / expected)


def test_kappa_rejects_mismatched_lists():
    with pytest.raises(InvalidParameterError, match="equal, non-empty"):
        cohen_kappa([1], [1, 2])


@pytest.mark.parametrize(("weights", "expected"), [("linear", 0.6), ("quadratic", 0.8)])
def test_weighted_kappa_of_scores_reaching_ten_equals_sklearn(weights, expected):
    """Issue 25: scores were ordered as text (10 before 2), so quadratic kappa came out -0.333, not 0.8."""
    first, second = [1, 2, 9, 10], [2, 2, 10, 10]
    assert cohen_kappa_score(first, second, weights=weights) == pytest.approx(expected)
    assert cohen_kappa(first, second, weights=weights) == pytest.approx(expected)


def test_judges_rubric_scores_one_to_ten_agree_as_sklearn_says():
    rng = np.random.default_rng(4)
    truth = rng.integers(1, 11, size=50)
    scores = {name: np.clip(truth + rng.integers(-1, 2, size=50), 1, 10).tolist() for name in ("j1", "j2")}
    kappa = judge_agreement(scores, weights="quadratic")["pairs"]["j1 vs j2"]["kappa"]
    assert kappa == pytest.approx(cohen_kappa_score(scores["j1"], scores["j2"], weights="quadratic"), abs=1e-12)
