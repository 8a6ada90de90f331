"""Cascades: ask the cheapest tier first and escalate to the next when a rule says the answer is not to be
trusted (vote agreement below a threshold, a verifier failing, a low logprob margin, a plugin's rule, or any
callable; see `escalation`).

Each tier runs `self_consistency` with its own sampler and `n` (n=1 is a single answer) over any core `Backend`
(a local model, the engine, `llmkit serve` or an OpenAI-compatible URL through eval's `openai` backend); the rule
sees the tier's `ScalingResult`. The last tier's answer stands whatever the rule says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidParameterError
from .answers import AnswerExtractor
from .escalation import Escalation, EscalationRule, any_of, escalation_rule
from .sampling import Prompt, Sampler
from .strategies import ScalingResult, self_consistency

RuleSpec = EscalationRule | str | Mapping[str, Any]  # a callable, 'NAME:key=value,...' or {"name": NAME, ...}


@dataclasses.dataclass(frozen=True)
class Tier:
    name: str
    sampler: Sampler
    n: int = 1  # samples voted at this tier (agreement needs n > 1)


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
    rule: RuleSpec | Sequence[RuleSpec],
    answer: str | AnswerExtractor = "number",
    reference: Any = None,
) -> CascadeResult:
    """Ask the tiers in order (cheapest first) until the rule does not escalate, or the last tier answered.
    `rule` is a callable, a registered rule by spec, or a list of them (escalate when any does)."""
    if not tiers:
        raise InvalidParameterError("a cascade needs at least one tier")
    rule = resolve_rule(rule)
    results, decisions = [], []
    for tier in tiers:
        result = self_consistency(tier.sampler, prompt, tier.n, answer)
        decision = rule(prompt, result, reference)
        results.append(result)
        decisions.append(decision)
        if not decision.escalate:
            break
    return CascadeResult(results[-1].answer, results[-1].text, tiers[len(results) - 1].name, results, decisions)


def resolve_rule(rule: RuleSpec | Sequence[RuleSpec]) -> EscalationRule:
    """One callable rule from a callable, a registered rule's spec, or a list of either (any of them)."""
    if callable(rule) or isinstance(rule, str | Mapping):
        return escalation_rule(rule)
    return any_of([escalation_rule(r) for r in rule])
