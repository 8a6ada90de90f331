"""Chance-corrected agreement between annotators: Cohen's kappa (two) and Fleiss' kappa (many)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from llmkit.core.errors import InvalidParameterError

WEIGHTS = (None, "linear", "quadratic")


def cohen_kappa(
    first: Sequence[Hashable],
    second: Sequence[Hashable],
    weights: str | None = None,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Cohen's kappa of two annotators' labels on the same items; `weights` linear/quadratic for ordered labels.

    Weighted kappa orders labels by `categories` (default: sorted) and penalizes a disagreement by its distance.
    """
    if len(first) != len(second) or not first:
        raise InvalidParameterError("cohen_kappa needs two equally long, non-empty label sequences")
    if weights not in WEIGHTS:
        raise InvalidParameterError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    labels = list(categories) if categories is not None else sorted(set(first) | set(second), key=repr)
    position = {label: i for i, label in enumerate(labels)}
    unknown = (set(first) | set(second)) - set(position)
    if unknown:
        raise InvalidParameterError(f"labels {sorted(map(repr, unknown))} are not among the categories")
    k = len(labels)
    observed = np.zeros((k, k))
    for a, b in zip(first, second, strict=True):
        observed[position[a], position[b]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
    if weights is None:
        disagreement = (distance > 0).astype(float)
    else:
        disagreement = distance if weights == "linear" else distance**2
    expected_disagreement = (disagreement * expected).sum()
    if expected_disagreement == 0:
        return 1.0  # both annotators used one and the same label throughout
    return float(1 - (disagreement * observed).sum() / expected_disagreement)


def fleiss_kappa(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an [items, categories] table of how many annotators chose each category.

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


def category_counts(labels_by_item: Sequence[Sequence[Hashable]]) -> tuple[np.ndarray, list[Hashable]]:
    """The [items, categories] count table of per-item label lists, and the category order used."""
    categories = sorted({label for labels in labels_by_item for label in labels}, key=repr)
    position = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(labels_by_item), len(categories)), dtype=np.int64)
    for row, labels in enumerate(labels_by_item):
        for label in labels:
            table[row, position[label]] += 1
    return table, categories
