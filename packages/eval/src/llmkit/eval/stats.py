"""Uncertainty: bootstrap CIs, paired bootstrap, McNemar's test (Cohen's kappa: `llmkit.core.agreement`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from .errors import EvalError

BOOTSTRAP_RESAMPLES = 2000


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap 95% confidence interval over `n` items."""

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "n": self.n}

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}] (n={self.n})"


def resample_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """[resamples, n] item indices drawn with replacement (fixed seed: reports are reproducible)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(statistics: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval (numpy's linear interpolation) of bootstrap statistics."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(statistics, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    indices: np.ndarray | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """The statistic (default the mean) of `values` with a percentile bootstrap CI."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise EvalError("cannot bootstrap an empty sample")
    statistic = statistic or (lambda x: x.mean(axis=-1))
    indices = resample_indices(data.size, seed=seed) if indices is None else np.asarray(indices)
    low, high = percentile_interval(statistic(data[indices]), confidence)
    return Estimate(float(statistic(data[None])[0]), low, high, int(data.size))


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, indices: np.ndarray | None = None, seed: int = 0
) -> Estimate:
    """mean(b) - mean(a) over the same items, with a CI from resampling items (not runs) jointly."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise EvalError(f"paired comparison needs two equal, non-empty score lists, got {x.size} and {y.size}")
    return bootstrap(y - x, indices=indices, seed=seed)


@dataclasses.dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired right/wrong outcomes: b = only A right, c = only B right."""

    b: int
    c: int
    exact_p: float  # two-sided binomial test on the discordant pairs
    chi2: float  # with continuity correction
    chi2_p: float


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    if len(a_correct) != len(b_correct):
        raise EvalError(f"McNemar needs paired outcomes, got {len(a_correct)} and {len(b_correct)}")
    b = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if x and not y)
    c = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if y and not x)
    n = b + c
    if n == 0:
        return McNemar(0, 0, 1.0, 0.0, 1.0)
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    chi2 = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, min(1.0, 2 * tail), chi2, math.erfc(math.sqrt(chi2 / 2)))
