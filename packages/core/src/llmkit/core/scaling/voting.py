"""Votes over extracted answers. Ties go to the answer whose first vote came earliest (sample order), so a
vote is a pure function of the samples in order."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidParameterError


def vote_totals(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> dict[str, float]:
    """Total weight per non-empty answer (each vote weighs 1 without weights), in first-seen order."""
    if weights is not None and len(weights) != len(answers):
        raise InvalidParameterError(f"{len(answers)} answers but {len(weights)} weights")
    totals: dict[str, float] = {}
    for i, answer in enumerate(answers):
        if answer is None or answer == "":
            continue
        weight = 1.0 if weights is None else float(weights[i])
        if weight < 0:
            raise InvalidParameterError(f"vote weights must be >= 0, got {weight}")
        totals[answer] = totals.get(answer, 0.0) + weight
    return totals


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most common non-empty answer; ties go to the one seen first; None when no sample had an answer."""
    return weighted_vote(answers, None)


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float] | None) -> str | None:
    """The answer with the largest total weight; ties go to the one seen first."""
    totals = vote_totals(answers, weights)
    if not totals:
        return None
    best = max(totals.values())
    return next(answer for answer, total in totals.items() if total == best)
