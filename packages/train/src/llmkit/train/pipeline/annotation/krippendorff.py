"""Krippendorff's alpha for any number of coders, missing values, and nominal/ordinal/interval/ratio data.

Computed from the coincidence matrix as in Krippendorff (2011), "Computing Krippendorff's
Alpha-Reliability": alpha = 1 - D_o / D_e with the level's squared difference function.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from llmkit.core.agreement import category_order
from llmkit.core.errors import InvalidParameterError

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def coincidences(
    reliability_data: Sequence[Sequence[Any]], order: Sequence[Hashable] | None = None, *, ordered: bool = False
) -> tuple[list[Any], np.ndarray]:
    """(values, o[c, k]): each unit's pairable values, every ordered pair weighted 1 / (m_u - 1).

    Values are in `order` when given, else numbers ascending (`llmkit.core.agreement.category_order`).
    """
    coders = [list(row) for row in reliability_data]
    if len(coders) < 2 or len({len(row) for row in coders}) != 1:
        raise InvalidParameterError("reliability data needs >= 2 coders, each with a value (or None) per unit")
    values = category_order((v for row in coders for v in row if not _missing(v)), order, ordered=ordered)
    position = {v: i for i, v in enumerate(values)}
    matrix = np.zeros((len(values), len(values)))
    for unit in zip(*coders, strict=True):
        present = [position[v] for v in unit if not _missing(v)]
        m = len(present)
        if m < 2:
            continue
        counts = np.bincount(present, minlength=len(values)).astype(float)
        matrix += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    return values, matrix


def difference_squared(level: str, values: list[Any], totals: np.ndarray) -> np.ndarray:
    """delta^2[c, k] of the level of measurement (ordinal uses the marginal totals n_g)."""
    k = len(values)
    if level == "nominal":
        return 1.0 - np.eye(k)
    numeric = np.asarray(values, dtype=np.float64) if level != "ordinal" else None
    if level == "interval":
        return np.subtract.outer(numeric, numeric) ** 2
    if level == "ratio":
        sums = np.add.outer(numeric, numeric)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(sums == 0, 0.0, np.subtract.outer(numeric, numeric) / sums)
        return ratio**2
    cumulative = np.concatenate([[0.0], np.cumsum(totals)])
    low, high = np.minimum.outer(np.arange(k), np.arange(k)), np.maximum.outer(np.arange(k), np.arange(k))
    between = cumulative[high + 1] - cumulative[low]  # sum of n_g for g from c to k
    return (between - (totals[low] + totals[high]) / 2) ** 2


def krippendorff_alpha(
    reliability_data: Sequence[Sequence[Any]], level: str = "nominal", order: Sequence[Hashable] | None = None
) -> float:
    """Alpha of a [coders, units] table; None or NaN marks a missing value.

    Ordinal values are ranked by `order` when given, else they must be numbers (ranked ascending).
    """
    if level not in LEVELS:
        raise InvalidParameterError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if order is not None and level in ("interval", "ratio"):
        raise InvalidParameterError(f"{level} alpha uses the values themselves; an order applies to ordinal data")
    values, matrix = coincidences(reliability_data, order, ordered=level == "ordinal")
    if level in ("interval", "ratio") and not all(isinstance(v, int | float) for v in values):
        raise InvalidParameterError(f"{level} alpha needs numeric values")
    totals = matrix.sum(axis=1)
    n = totals.sum()
    if n < 2 or len(values) < 2:
        raise InvalidParameterError("alpha is undefined: fewer than two pairable values or only one value used")
    delta = difference_squared(level, values, totals)
    observed = (matrix * delta).sum() / n
    expected = (np.outer(totals, totals) * delta).sum() / (n * (n - 1))
    return float(1 - observed / expected)
