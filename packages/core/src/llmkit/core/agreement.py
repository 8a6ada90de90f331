"""Chance-corrected agreement between raters: Cohen's kappa (two, optionally weighted) and Fleiss' kappa
(many), over one category order shared by every statistic.

Shared by llmkit-train (annotation quality) and llmkit-eval (judges against judges and people).
Numbers order numerically (10 after 9, not after 1); other labels have no order unless one is declared,
so a weighted statistic over them without `categories` is an error rather than an alphabetical guess.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from .errors import InvalidParameterError

WEIGHTS = (None, "linear", "quadratic")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real)


def category_order(
    labels: Iterable[Hashable], categories: Sequence[Hashable] | None = None, *, ordered: bool = False
) -> list[Hashable]:
    """The categories of `labels`, in order.

    `categories` given: that order (each once), and every label must be among them. Otherwise numbers
    ascending; labels that are not all numbers are sorted as text when `ordered` is False (the order
    is then only a display order) and refused when it is True (ordinal data needs a declared order).
    """
    present = set(labels)
    if categories is not None:
        declared = list(categories)
        if len(set(declared)) != len(declared):
            raise InvalidParameterError(f"the declared categories repeat a value: {declared!r}")
        unknown = present - set(declared)
        if unknown:
            raise InvalidParameterError(
                f"labels {sorted(map(repr, unknown))} are not among the declared categories {declared!r}"
            )
        return declared
    if all(_is_number(label) for label in present):
        return sorted(present)
    if ordered:
        raise InvalidParameterError(
            f"labels {sorted(map(repr, present))} are not all numbers, so they have no order of their own; "
            "declare it (categories=[...], or --order on the command line)"
        )
    return sorted(present, key=lambda label: (0, label, "") if _is_number(label) else (1, 0, str(label)))


def confusion_matrix(
    first: Sequence[Hashable], second: Sequence[Hashable], categories: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], np.ndarray]:
    """(categories, counts[i, j]): how often the first rater said category i where the second said j."""
    if len(first) != len(second) or not len(first):
        raise InvalidParameterError(
            f"agreement needs two equal, non-empty label lists, got {len(first)} and {len(second)}"
        )
    order = category_order([*first, *second], categories)
    position = {label: i for i, label in enumerate(order)}
    matrix = np.zeros((len(order), len(order)))
    for a, b in zip(first, second, strict=True):
        matrix[position[a], position[b]] += 1
    return order, matrix


def cohen_kappa(
    first: Sequence[Hashable],
    second: Sequence[Hashable],
    *,
    weights: str | None = None,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Cohen's kappa of two raters' labels on the same items; `weights` linear/quadratic for ordered labels.

    Weighted kappa penalizes a disagreement by the distance between the two categories' ranks in the
    order (`categories`, default the labels used, numbers ascending), as scikit-learn's
    `cohen_kappa_score` does; declare `categories` to fix the scale when some go unused.
    """
    if weights not in WEIGHTS:
        raise InvalidParameterError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    if weights is not None:
        categories = category_order([*first, *second], categories, ordered=True)
    order, counts = confusion_matrix(first, second, categories)
    observed = counts / counts.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    ranks = np.arange(len(order))
    distance = np.abs(np.subtract.outer(ranks, ranks)).astype(float)
    if weights is None:
        disagreement = (distance > 0).astype(float)
    else:
        disagreement = distance if weights == "linear" else distance**2
    expected_disagreement = (disagreement * expected).sum()
    if expected_disagreement == 0:
        return 1.0  # both raters used one and the same category throughout
    return float(1 - (disagreement * observed).sum() / expected_disagreement)


def fleiss_kappa(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an [items, categories] table of how many raters chose each category.

    Every item must have the same number of ratings (Fleiss 1971).
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 2:
        raise InvalidParameterError("fleiss_kappa needs an [items, categories] table with at least 2 categories")
    raters = table.sum(axis=1)
    if raters.min() != raters.max() or raters[0] < 2:
        raise InvalidParameterError("fleiss_kappa needs the same number (>= 2) of ratings for every item")
    n = raters[0]
    per_item = ((table * (table - 1)).sum(axis=1)) / (n * (n - 1))
    category_share = table.sum(axis=0) / table.sum()
    observed, expected = per_item.mean(), (category_share**2).sum()
    if expected == 1:
        return 1.0
    return float((observed - expected) / (1 - expected))


def category_counts(
    labels_by_item: Sequence[Sequence[Hashable]], categories: Sequence[Hashable] | None = None
) -> tuple[np.ndarray, list[Hashable]]:
    """The [items, categories] count table of per-item label lists, and the category order used."""
    order = category_order((label for labels in labels_by_item for label in labels), categories)
    position = {c: i for i, c in enumerate(order)}
    table = np.zeros((len(labels_by_item), len(order)), dtype=np.int64)
    for row, labels in enumerate(labels_by_item):
        for label in labels:
            table[row, position[label]] += 1
    return table, order
