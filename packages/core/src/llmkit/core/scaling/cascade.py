"""Cascades: ask the cheapest tier first and escalate to the next when a rule says the answer is not to be
trusted (vote agreement below a threshold, a verifier failing, or any callable rule).

Each tier runs `self_consistency` with its own sampler and `n` (n=1 is a single answer); the rule sees the
tier's `ScalingResult`. The last tier's answer stands whatever the rule says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidParameterError
from ..verifiers import verify
from .answers import AnswerExtractor
from .sampling import Prompt, Sampler
from .strategies import ScalingResult, prompt_text, self_consistency


@dataclasses.dataclass(frozen=True)
class Tier:
    name: str
    sampler: Sampler
    n: int = 1  # samples voted at this tier (agreement needs n > 1)


@dataclasses.dataclass(frozen=True)
class Escalation:
    escalate: bool
    reason: str


EscalationRule = Callable[[Prompt, ScalingResult, Any], Escalation]  # (prompt, tier result, reference)


def agreement_below(threshold: float) -> EscalationRule:
    """Escalate when the winning answer holds less than `threshold` of the tier's samples (no answer: escalate)."""
    if not 0.0 < threshold <= 1.0:
        raise InvalidParameterError(f"agreement threshold must be in (0, 1], got {threshold}")

    def rule(prompt: Prompt, result: ScalingResult, reference: Any) -> Escalation:
        votes = result.votes or {}
        if result.answer is None:
            return Escalation(True, "no answer")
        share = votes[result.answer] / len(result.samples)
        return Escalation(share < threshold, f"agreement {share:.2f} vs {threshold:.2f}")

    return rule


def verifier_fails(name: str) -> EscalationRule:
    """Escalate when the registered verifier `name` rejects the tier's chosen sample."""

    def rule(prompt: Prompt, result: ScalingResult, reference: Any) -> Escalation:
        verdict = verify(name, prompt_text(prompt), result.text, reference)
        return Escalation(not verdict.passed, f"{name}: {verdict.detail or ('pass' if verdict.passed else 'fail')}")

    return rule


@dataclasses.dataclass
class CascadeResult:
    answer: str | None
    text: str
    tier: str  # the tier whose answer stands
    results: list[ScalingResult]  # one per tier asked
    decisions: list[Escalation]  # the rule's verdict after each tier asked (the last one included)

    @property
    def generated_tokens(self) -> int:
        return sum(r.cost.generated_tokens for r in self.results)

    @property
    def wall_seconds(self) -> float:
        return sum(r.cost.wall_seconds for r in self.results)


def cascade(
    tiers: Sequence[Tier],
    prompt: Prompt,
    rule: EscalationRule,
    answer: str | AnswerExtractor = "number",
    reference: Any = None,
) -> CascadeResult:
    """Ask the tiers in order (cheapest first) until the rule does not escalate, or the last tier answered."""
    if not tiers:
        raise InvalidParameterError("a cascade needs at least one tier")
    results, decisions = [], []
    for tier in tiers:
        result = self_consistency(tier.sampler, prompt, tier.n, answer)
        decision = rule(prompt, result, reference)
        results.append(result)
        decisions.append(decision)
        if not decision.escalate:
            break
    return CascadeResult(results[-1].answer, results[-1].text, tiers[len(results) - 1].name, results, decisions)
