"""Cohen's and Fleiss' kappa (llmkit.core.agreement, shared by train and eval) equal scikit-learn's on
labels that reach 10 and beyond: categories order as numbers, or as declared, never as text (issue 25)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from llmkit.core.agreement import category_counts, category_order, cohen_kappa, confusion_matrix, fleiss_kappa
from llmkit.core.errors import InvalidParameterError

WEIGHTS = [None, "linear", "quadratic"]


@pytest.mark.parametrize(("weights", "published"), [("linear", 0.6), ("quadratic", 0.8)])
def test_the_reported_example_equals_sklearn(weights, published):
    first, second = [1, 2, 9, 10], [2, 2, 10, 10]
    assert cohen_kappa_score(first, second, weights=weights) == pytest.approx(published)
    assert cohen_kappa(first, second, weights=weights) == pytest.approx(published)


def noisy_ratings(rng: np.random.Generator, categories: int, items: int) -> tuple[np.ndarray, np.ndarray]:
    """Two raters who mostly agree within a step or two on `categories` ordered labels 0..categories-1."""
    truth = rng.integers(0, categories, size=items)
    first = np.clip(truth + rng.integers(-2, 3, size=items), 0, categories - 1)
    second = np.where(rng.random(items) < 0.6, truth, rng.integers(0, categories, size=items))
    return first, second


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("categories", [10, 12, 25])
def test_random_ratings_with_ten_or_more_categories_equal_sklearn(weights, categories):
    rng = np.random.default_rng(categories)
    for trial in range(20):
        first, second = noisy_ratings(rng, categories, items=int(rng.integers(5, 200)))
        offset = int(rng.integers(-3, 20))  # labels up to 43: many two-digit numbers among one-digit ones
        first, second = (first + offset).tolist(), (second + offset).tolist()
        expected = cohen_kappa_score(first, second, weights=weights)
        assert cohen_kappa(first, second, weights=weights) == pytest.approx(expected, abs=1e-12), trial
        floats = [x + 0.5 for x in first], [y + 0.5 for y in second]
        assert cohen_kappa(*floats, weights=weights) == pytest.approx(expected, abs=1e-12), trial


@pytest.mark.parametrize("weights", WEIGHTS)
def test_declared_order_equals_sklearn_labels(weights):
    """Text labels in a declared order (some unused) give sklearn's kappa with the same `labels=`."""
    rng = np.random.default_rng(3)
    order = [f"grade-{g}" for g in range(14)]  # as text, grade-10 would sort before grade-2
    for _ in range(10):
        first, second = noisy_ratings(rng, 12, items=60)
        first, second = [order[i] for i in first], [order[i] for i in second]
        expected = cohen_kappa_score(first, second, weights=weights, labels=order)
        assert cohen_kappa(first, second, weights=weights, categories=order) == pytest.approx(expected, abs=1e-12)


def test_weighted_kappa_needs_an_order_for_text_labels():
    with pytest.raises(InvalidParameterError, match="no order of their own; declare it"):
        cohen_kappa(["low", "high"], ["low", "mid"], weights="linear")
    assert cohen_kappa(["low", "high"], ["low", "mid"]) == pytest.approx(
        cohen_kappa_score(["low", "high"], ["low", "mid"])
    )


def test_bad_input_is_refused():
    with pytest.raises(InvalidParameterError, match="equal, non-empty"):
        cohen_kappa([1], [1, 2])
    with pytest.raises(InvalidParameterError, match="weights must be"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    with pytest.raises(InvalidParameterError, match="not among the declared categories"):
        cohen_kappa([1, 2], [1, 3], categories=[1, 2])
    with pytest.raises(InvalidParameterError, match="repeat"):
        category_order([1], [1, 1])


def test_one_order_for_every_statistic():
    assert category_order([10, 2, 9, 1, 2.5]) == [1, 2, 2.5, 9, 10]
    categories, matrix = confusion_matrix([10, 2, 9], [2, 2, 10])
    assert categories == [2, 9, 10] and matrix.tolist() == [[1, 0, 0], [0, 0, 1], [1, 0, 0]]
    table, order = category_counts([[10, 2], [9, 10], [1, 1]])
    assert order == [1, 2, 9, 10]
    assert table.tolist() == [[0, 1, 0, 1], [0, 0, 1, 1], [2, 0, 0, 0]]


def test_fleiss_kappa_with_two_raters_matches_the_pooled_marginal_formula():
    """Fleiss' kappa over 12 categories from category_counts: (P_o - P_e) / (1 - P_e) by hand."""
    rng = np.random.default_rng(5)
    first, second = noisy_ratings(rng, 12, items=80)
    table, _ = category_counts([[int(a), int(b)] for a, b in zip(first, second, strict=True)])
    agreement = float(np.mean(first == second))
    shares = np.bincount(np.concatenate([first, second]), minlength=12) / (2 * len(first))
    chance = float((shares**2).sum())
    assert fleiss_kappa(table) == pytest.approx((agreement - chance) / (1 - chance), abs=1e-12)
