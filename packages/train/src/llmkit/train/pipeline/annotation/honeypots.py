"""Honeypots: items with a known answer mixed into annotation work; each annotator's accuracy on them.

An annotator is flagged when their accuracy is below the threshold on at least `min_items` honeypots;
the Wilson 95% interval says how sure that is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping


@dataclasses.dataclass(frozen=True)
class HoneypotResult:
    annotator: str
    answered: int
    correct: int
    accuracy: float
    interval: tuple[float, float]
    flagged: bool


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def honeypot_accuracy(
    annotations: Iterable[tuple[str, Hashable, Hashable]],
    gold: Mapping[Hashable, Hashable],
    threshold: float = 0.8,
    min_items: int = 5,
) -> list[HoneypotResult]:
    """Per annotator, from (annotator, item, label) triples: accuracy on the items that have a gold label."""
    tallies: dict[str, list[int]] = {}
    for annotator, item, label in annotations:
        if item in gold:
            tally = tallies.setdefault(str(annotator), [0, 0])
            tally[0] += 1
            tally[1] += label == gold[item]
    results = []
    for annotator, (answered, correct) in sorted(tallies.items()):
        accuracy = correct / answered
        flagged = answered >= min_items and accuracy < threshold
        results.append(
            HoneypotResult(annotator, answered, correct, accuracy, wilson_interval(correct, answered), flagged)
        )
    return results
