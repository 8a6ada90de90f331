"""Bradley-Terry scores from pairwise or ranked preferences, by Hunter's (2004) MM iteration.

P(i beats j) = p_i / (p_i + p_j). A tie counts half a win to each side; a ranking (best first) counts
as every pair it implies. `prior` adds that many games against a virtual average item, half won,
which keeps an unbeaten or winless item finite.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from llmkit.core.errors import InvalidParameterError


@dataclasses.dataclass(frozen=True)
class BradleyTerryScores:
    items: list[Hashable]
    strength: np.ndarray  # p_i, geometric mean 1
    wins: np.ndarray
    games: np.ndarray
    iterations: int

    @property
    def log_strength(self) -> np.ndarray:
        return np.log(self.strength)

    def probability(self, first: Hashable, second: Hashable) -> float:
        i, j = self.items.index(first), self.items.index(second)
        return float(self.strength[i] / (self.strength[i] + self.strength[j]))

    def ranking(self) -> list[tuple[Hashable, float]]:
        order = np.argsort(-self.strength, kind="stable")
        return [(self.items[i], float(self.strength[i])) for i in order]


def pairs_from_ranking(ranking: Sequence[Hashable]) -> list[tuple[Hashable, Hashable]]:
    """(winner, loser) for every pair a best-first ranking implies."""
    return list(itertools.combinations(ranking, 2))


def bradley_terry(
    comparisons: Iterable[tuple[Hashable, Hashable] | tuple[Hashable, Hashable, float]],
    prior: float = 0.0,
    tolerance: float = 1e-10,
    max_iterations: int = 10_000,
) -> BradleyTerryScores:
    """Fit strengths to (winner, loser) pairs, or (a, b, s) with s the share a won (1 win, 0.5 tie, 0 loss)."""
    index: dict[Hashable, int] = {}
    triples = []
    for comparison in comparisons:
        a, b, share = (*comparison, 1.0) if len(comparison) == 2 else comparison
        if not 0.0 <= share <= 1.0 or a == b:
            raise InvalidParameterError(f"bad comparison {comparison!r}: two different items and a share in [0, 1]")
        triples.append((index.setdefault(a, len(index)), index.setdefault(b, len(index)), float(share)))
    if len(index) < 2:
        raise InvalidParameterError("Bradley-Terry needs comparisons between at least two items")
    k = len(index)
    wins, games = np.zeros((k, k)), np.zeros((k, k))
    for a, b, share in triples:
        wins[a, b] += share
        wins[b, a] += 1 - share
        games[a, b] += 1
        games[b, a] += 1
    total_wins = wins.sum(axis=1) + prior / 2
    if prior == 0 and (total_wins.min() == 0 or (games.sum(axis=1) - wins.sum(axis=1)).min() == 0):
        raise InvalidParameterError("an item never won or never lost: its strength is unbounded; use prior > 0")
    strength, iterations = np.ones(k), 0
    while iterations < max_iterations:
        iterations += 1
        denominator = (games / np.add.outer(strength, strength)).sum(axis=1) + prior / (strength + 1.0)
        updated = total_wins / denominator
        updated /= np.exp(np.log(updated).mean())
        if np.max(np.abs(np.log(updated) - np.log(strength))) < tolerance:
            strength = updated
            break
        strength = updated
    return BradleyTerryScores(list(index), strength, wins.sum(axis=1), games.sum(axis=1), iterations)
