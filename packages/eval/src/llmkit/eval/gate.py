"""Release gates: absolute thresholds and no-regression rules per task and slice, decided on paired items."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import yaml

from .errors import EvalError
from .results import load_results, load_samples
from .stats import Estimate, bootstrap, mcnemar, paired_bootstrap

RULE_KEYS = {"name", "task", "metric", "slice", "min", "no_regression", "tolerance", "minimum_detectable_effect"}
FILE_KEYS = {"alpha", "power", "minimum_detectable_effect", "tasks", "limit", "gates"}


@dataclasses.dataclass(frozen=True)
class GateRule:
    """One rule: `min` on the candidate's mean and/or no significant drop against the baseline."""

    task: str
    name: str
    metric: str | None = None  # None: the task's primary metric
    slice: str | None = None  # only items whose `tags` hold this
    min: float | None = None
    no_regression: bool = True
    tolerance: float = 0.0  # a drop up to this size is accepted
    minimum_detectable_effect: float = 0.1  # the drop the gate must be able to see (alpha, power)


@dataclasses.dataclass(frozen=True)
class GateFile:
    rules: tuple[GateRule, ...]
    alpha: float = 0.05
    power: float = 0.8
    tasks: tuple[str, ...] = ()  # task names or YAML files to run when a side is a model
    limit: int | None = None


@dataclasses.dataclass
class GateOutcome:
    """What one rule found: pass/fail, why, the estimates and the items that flipped."""

    rule: GateRule
    metric: str
    passed: bool
    reasons: list[str]
    n: int
    candidate: Estimate | None = None
    baseline: Estimate | None = None
    difference: Estimate | None = None
    p_value: float | None = None
    detectable_drop: float | None = None  # the smallest drop this many items detect at alpha and power
    regressions: list[str] = dataclasses.field(default_factory=list)
    improvements: list[str] = dataclasses.field(default_factory=list)


def _number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EvalError(f"{where} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _unknown(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise EvalError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def parse_gates(data: Any, source: str = "gates") -> GateFile:
    """A gate file's content (a mapping with `gates: [...]`), validated: unknown keys are errors."""
    if not isinstance(data, dict) or not isinstance(data.get("gates"), list) or not data["gates"]:
        raise EvalError(f"{source}: expected a mapping with a non-empty list `gates`")
    _unknown(set(data), FILE_KEYS, source)
    alpha = _number(data.get("alpha", 0.05), f"{source}: alpha", 1e-6, 0.5)
    power = _number(data.get("power", 0.8), f"{source}: power", 0.5, 0.999)
    default_mde = _number(data.get("minimum_detectable_effect", 0.1), f"{source}: minimum_detectable_effect", 0, 1e9)
    rules = []
    for index, raw in enumerate(data["gates"]):
        where = f"{source}: gates[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("task"), str):
            raise EvalError(f"{where}: each gate is a mapping with a `task`")
        _unknown(set(raw), RULE_KEYS, where)
        if raw.get("min") is None and raw.get("no_regression") is False:
            raise EvalError(f"{where}: checks nothing (no `min` and no_regression: false)")
        slice_ = raw.get("slice")
        default_name = raw["task"] + (f"[{slice_}]" if slice_ else "")
        rules.append(
            GateRule(
                task=raw["task"],
                name=str(raw.get("name") or default_name),
                metric=raw.get("metric"),
                slice=slice_,
                min=None if raw.get("min") is None else _number(raw["min"], f"{where}: min"),
                no_regression=bool(raw.get("no_regression", True)),
                tolerance=_number(raw.get("tolerance", 0.0), f"{where}: tolerance", 0),
                minimum_detectable_effect=_number(
                    raw.get("minimum_detectable_effect", default_mde), f"{where}: minimum_detectable_effect", 0
                ),
            )
        )
    tasks = data.get("tasks") or []
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise EvalError(f"{source}: tasks must be a list of task names or YAML files")
    limit = data.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise EvalError(f"{source}: limit must be a positive integer, got {limit!r}")
    return GateFile(tuple(rules), alpha, power, tuple(tasks), limit)


def load_gates(path: str | Path) -> GateFile:
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"no gate file at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EvalError(f"{path} is not valid YAML: {err}") from None
    return parse_gates(data, str(path))


def detectable_drop(differences: np.ndarray, binary: bool, alpha: float, power: float) -> float:
    """The smallest mean drop a paired test on these items detects with `power` (normal approximation).

    Binary: sqrt(discordant share / n) scaled, and never below z²/n (a drop of d flips at least d·n items).
    Other metrics: z · sd(differences) / sqrt(n).
    """
    n = differences.size
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    if binary:
        discordant = float(np.mean(differences != 0))
        return max(z * math.sqrt(discordant / n), z * z / n)
    if n < 2:
        return math.inf
    return z * float(np.std(differences, ddof=1)) / math.sqrt(n)


def _primary_metric(results: dict[str, Any], task: str, side: str) -> str:
    if task not in results["tasks"]:
        raise EvalError(f"the {side} run has no task {task!r} (it has: {', '.join(results['tasks']) or 'none'})")
    return results["tasks"][task].get("primary_metric", "acc")


def _values(run: Path, rule: GateRule, metric: str) -> dict[str, float]:
    values = {}
    for record in load_samples(run, rule.task):
        if rule.slice is not None and rule.slice not in (record.get("tags") or []):
            continue
        value = record["metrics"].get(metric)
        if value is not None:
            values[record["id"]] = float(value)
    return values


def check_rule(rule: GateRule, candidate: Path, baseline: Path | None, gates: GateFile) -> GateOutcome:
    """Decide one rule on the items both runs scored (the candidate's alone when there is no baseline)."""
    metric = rule.metric or _primary_metric(load_results(candidate), rule.task, "candidate")
    cand = _values(candidate, rule, metric)
    if not cand:
        where = f" tagged {rule.slice!r}" if rule.slice else ""
        raise EvalError(f"gate {rule.name}: the candidate has no items{where} with metric {metric!r}")
    outcome = GateOutcome(rule, metric, True, [], len(cand), candidate=bootstrap(list(cand.values())))
    if rule.min is not None and outcome.candidate.value < rule.min:
        outcome.passed = False
        outcome.reasons.append(f"{metric} {outcome.candidate.value:.4f} is below the threshold {rule.min}")
    if not rule.no_regression:
        return outcome
    if baseline is None:
        raise EvalError(f"gate {rule.name} checks for regressions: pass --baseline")
    base = _values(baseline, rule, metric)
    ids = [i for i in cand if i in base]
    if not ids:
        raise EvalError(f"gate {rule.name}: candidate and baseline share no items of {rule.task}")
    x = np.array([base[i] for i in ids])
    y = np.array([cand[i] for i in ids])
    outcome.n = len(ids)
    outcome.baseline = bootstrap(x)
    outcome.candidate = bootstrap(y)
    outcome.difference = paired_bootstrap(x, y)
    outcome.regressions = [i for i, u, v in zip(ids, x, y, strict=True) if v < u]
    outcome.improvements = [i for i, u, v in zip(ids, x, y, strict=True) if v > u]
    binary = bool(np.all(np.isin(np.concatenate([x, y]), (0.0, 1.0))))
    drop = -outcome.difference.value
    if binary:
        outcome.p_value = mcnemar(x == 1.0, y == 1.0).exact_p
        significant = outcome.p_value < gates.alpha
    else:  # the paired bootstrap interval at 1 - alpha lies wholly below zero
        high = bootstrap(y - x, confidence=1 - gates.alpha).high
        significant = high < 0
    if drop > rule.tolerance and significant:
        outcome.passed = False
        test = f"McNemar exact p {outcome.p_value:.3g}" if binary else f"paired bootstrap {1 - gates.alpha:.0%} CI"
        outcome.reasons.append(
            f"{metric} dropped {drop:.4f} (tolerance {rule.tolerance}; {test} < alpha {gates.alpha}); "
            f"{len(outcome.regressions)} items regressed, {len(outcome.improvements)} improved"
        )
    outcome.detectable_drop = detectable_drop(y - x, binary, gates.alpha, gates.power)
    if outcome.detectable_drop > rule.minimum_detectable_effect:
        outcome.passed = False
        outcome.reasons.append(
            f"underpowered: {len(ids)} items detect a drop of {outcome.detectable_drop:.4f} at alpha {gates.alpha} "
            f"and power {gates.power}, the gate states {rule.minimum_detectable_effect}; add items or raise "
            "minimum_detectable_effect"
        )
    return outcome


def run_gates(gates: GateFile, candidate: Path, baseline: Path | None) -> list[GateOutcome]:
    return [check_rule(rule, candidate, baseline, gates) for rule in gates.rules]
