"""Judges against each other and against people: Cohen's kappa, and whether longer answers win."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llmkit.core.agreement import cohen_kappa, confusion_matrix

from ..stats import bootstrap


def judge_agreement(labels_by_judge: Mapping[str, Sequence[Any]], weights: str | None = None) -> dict[str, Any]:
    """Pairwise Cohen's kappa between judges over the items every judge labeled (None = no label)."""
    names = list(labels_by_judge)
    pairs = {}
    for a, b in itertools.combinations(names, 2):
        both = [
            (x, y)
            for x, y in zip(labels_by_judge[a], labels_by_judge[b], strict=True)
            if x is not None and y is not None
        ]
        if both:
            xs, ys = zip(*both, strict=True)
            pairs[f"{a} vs {b}"] = {"kappa": cohen_kappa(xs, ys, weights=weights), "n": len(both)}
    kappas = [p["kappa"] for p in pairs.values()]
    return {"pairs": pairs, "mean_kappa": float(np.mean(kappas)) if kappas else None, "weights": weights}


def calibration(judge_labels: Sequence[Any], human_labels: Sequence[Any], weights: str | None = None) -> dict[str, Any]:
    """Judge vs human labels: Cohen's kappa, raw agreement and the confusion matrix (rows: judge)."""
    kept = [(j, h) for j, h in zip(judge_labels, human_labels, strict=True) if j is not None and h is not None]
    if not kept:
        return {"n": 0}
    judge, human = zip(*kept, strict=True)
    categories, matrix = confusion_matrix(judge, human)
    return {
        "n": len(kept),
        "kappa": cohen_kappa(judge, human, weights=weights, categories=categories),
        "agreement": float(np.trace(matrix) / matrix.sum()),
        "categories": [str(c) for c in categories],
        "confusion": matrix.astype(int).tolist(),
    }


def length_bias(winners: Sequence[str | None], lengths_x: Sequence[int], lengths_y: Sequence[int]) -> dict[str, Any]:
    """Among decided pairs whose answers differ in length, how often the longer answer won (0.5 = no bias)."""
    outcomes = []
    for winner, lx, ly in zip(winners, lengths_x, lengths_y, strict=True):
        if winner in ("x", "y") and lx != ly:
            longer = "x" if lx > ly else "y"
            outcomes.append(float(winner == longer))
    if not outcomes:
        return {"n": 0, "longer_wins": None}
    return {"n": len(outcomes), "longer_wins": bootstrap(outcomes).to_dict()}
