"""The decision tree over the runs: which layer each failure lives in, the evidence across cases (fix
rates with Wilson intervals, McNemar's exact test against the baseline) and the suggested fix."""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from typing import Any

from llmkit.eval.stats import mcnemar

from .cases import FailingCase
from .execute import Outcome
from .interventions import INTERVENTIONS

LAYERS = {1: "prompt/context", 2: "system design", 3: "capability", 4: "training"}
PROMPT_INTERVENTIONS = ("critical_first", "critical_last", "stripped", "chain_of_thought", "structured")
GROWTH_FIX = (
    "the context grows without bound across the run ({growth}) and the case alone succeeds: bound it in the "
    "loop (a tool-result lifecycle with short verbatim/summary windows, a rolling summary, a budgeted "
    "ContextWindow) instead of re-sending every turn"
)
NOTHING_FIXES = (
    "no prompt, context or sampling change made this model right: the task is past its capability. {compare}"
)


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval for a binomial share: sane at 0/n and n/n, where a bootstrap collapses."""
    if n == 0:
        return 0.0, 1.0
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def case_layer(case: FailingCase, outcomes: dict[str, Outcome]) -> tuple[int | None, str | None]:
    """(layer, the intervention that decided it) for one case; (None, None) when the baseline was right."""
    if outcomes["baseline"].passed:
        return None, None
    fixed = {name for name, outcome in outcomes.items() if outcome.passed}
    if case.growth is not None and case.growth.unbounded and "stripped" in fixed:
        return 2, "stripped"
    for name in PROMPT_INTERVENTIONS:
        if name in fixed:
            return 1, name
    if "more_samples" in fixed:
        return 4, "more_samples"
    if "compare_model" in fixed:
        return 3, "compare_model"
    return 3, None


def intervention_evidence(results: Sequence[dict[str, Outcome]]) -> list[dict[str, Any]]:
    """Per intervention, over the cases whose failure reproduced: how many it made right, the share's 95%
    Wilson interval, and McNemar's exact p against the baseline on the same cases."""
    reproduced = [r for r in results if not r["baseline"].passed]
    rows = []
    for intervention in INTERVENTIONS[1:]:
        ran = [r[intervention.name] for r in reproduced if r[intervention.name].skipped is None]
        fixed = sum(o.passed for o in ran)
        low, high = wilson_interval(fixed, len(ran))
        skipped = collections.Counter(r[intervention.name].skipped for r in reproduced if r[intervention.name].skipped)
        rows.append(
            {
                "name": intervention.name,
                "layer": intervention.layer,
                "question": intervention.question,
                "ran": len(ran),
                "fixed": fixed,
                "share": fixed / len(ran) if ran else None,
                "ci_low": low,
                "ci_high": high,
                "mcnemar_p": mcnemar([False] * len(ran), [o.passed for o in ran]).exact_p if ran else None,
                "skipped": dict(sorted(skipped.items())),  # reason -> how many cases it skipped
            }
        )
    return rows


def _growth_text(cases: Sequence[FailingCase]) -> str:
    runs = [c.growth for c in cases if c.growth is not None and c.growth.prompt_tokens]
    if not runs:
        return "no per-call token record"
    tokens = runs[0].prompt_tokens
    return f"prompt tokens {tokens[0]} → {tokens[-1]} over {len(tokens)} calls" + (
        f", stopped: {runs[0].stop_reason}" if runs[0].stop_reason else ""
    )


def verdict(
    cases: Sequence[FailingCase], results: Sequence[dict[str, Outcome]], compare_model: str | None
) -> dict[str, Any]:
    """The layer most reproduced failures point to (ties go to the earlier layer of the tree), the intervention
    that decided most of them, and the fix."""
    decided = [(case, *case_layer(case, outcome)) for case, outcome in zip(cases, results, strict=True)]
    reproduced = [d for d in decided if d[1] is not None]
    if not reproduced:
        return {"layer": None, "layer_name": "not reproduced", "intervention": None, "cases": 0, "of": 0,
                "fix": "every case was right on the baseline run: nothing to diagnose on this model",
                "per_layer": {}}  # fmt: skip
    counts = collections.Counter(layer for _, layer, _ in reproduced)
    layer = min(counts, key=lambda x: (-counts[x], x))
    in_layer = [(case, name) for case, x, name in reproduced if x == layer]
    names = collections.Counter(name for _, name in in_layer)
    decisive = max(names, key=lambda n: (names[n], n is not None))
    if layer == 2:
        fix = GROWTH_FIX.format(growth=_growth_text([case for case, _ in in_layer]))
    elif decisive is None:
        compare = (
            f"The comparison model {compare_model} did not do it either: no model here does it; change the task "
            "or train for it (layer 4)."
            if compare_model
            else "Run with --compare-model to tell a gap of this model from a task no model here does."
        )
        fix = NOTHING_FIXES.format(compare=compare)
    else:
        fix = next(i.fix for i in INTERVENTIONS if i.name == decisive)
    return {
        "layer": layer,
        "layer_name": LAYERS[layer],
        "intervention": decisive,
        "cases": len(in_layer),
        "of": len(reproduced),
        "fix": fix,
        "per_layer": {str(x): counts[x] for x in sorted(counts)},
    }
