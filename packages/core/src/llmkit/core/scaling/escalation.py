"""Escalation rules: after a cascade tier answers, decide whether the next (costlier) tier is asked.

A rule is `(prompt, tier_result, reference) -> Escalation`. Built in: vote agreement below a threshold, a
verifier failing, a low logprob margin on the answer's tokens. Plugins add rules by name through
`llmkit_register_escalation_rules` (`register(name, factory)`, `factory(**options) -> rule`);
`escalation_rule("logprob_margin_below:threshold=1.5")` builds one from the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InvalidParameterError, PluginError
from ..verifiers import verify
from .sampling import Prompt, TokenTop
from .strategies import ScalingResult, prompt_text


@dataclasses.dataclass(frozen=True)
class Escalation:
    escalate: bool
    reason: str


EscalationRule = Callable[[Prompt, ScalingResult, Any], Escalation]  # (prompt, tier result, reference)


def agreement_below(threshold: float | str) -> EscalationRule:
    """Escalate when the winning answer holds less than `threshold` of the tier's samples (no answer: escalate)."""
    threshold = _number("agreement_below", "threshold", threshold)
    if not 0.0 < threshold <= 1.0:
        raise InvalidParameterError(f"agreement threshold must be in (0, 1], got {threshold}")

    def rule(prompt: Prompt, result: ScalingResult, reference: Any) -> Escalation:
        votes = result.votes or {}
        if result.answer is None:
            return Escalation(True, "no answer")
        share = votes[result.answer] / len(result.samples)
        return Escalation(share < threshold, f"agreement {share:.2f} vs {threshold:.2f}")

    return rule


def verifier_fails(verifier: str) -> EscalationRule:
    """Escalate when the registered verifier `verifier` rejects the tier's chosen sample."""
    if not isinstance(verifier, str) or not verifier:
        raise InvalidParameterError(f"verifier_fails needs a verifier name, got {verifier!r}")

    def rule(prompt: Prompt, result: ScalingResult, reference: Any) -> Escalation:
        verdict = verify(verifier, prompt_text(prompt), result.text, reference)
        detail = verdict.detail or ("pass" if verdict.passed else "fail")
        return Escalation(not verdict.passed, f"{verifier}: {detail}")

    return rule


@dataclasses.dataclass(frozen=True)
class AnswerMargin:
    """The smallest top-1 minus top-2 logprob over the chosen sample's answer tokens."""

    margin: float
    tokens: int  # how many tokens the minimum ran over
    located: bool  # False: the answer was not found verbatim in the sample, so every generated token counted


def answer_margin(result: ScalingResult) -> AnswerMargin:
    """Where the model hesitated on its answer: for each token that overlaps the last verbatim occurrence of the
    chosen answer in the chosen sample, top-1 minus top-2 logprob of that position's distribution; the minimum.
    An answer that does not occur verbatim (a normalized number, say '1200' from '1,200') uses every token."""
    if result.tokens is None:
        raise InvalidParameterError(
            "the logprob margin needs the tier's top logprobs: sample with SamplingParams(top_logprobs=2) "
            "on a backend that reports them"
        )
    tokens = result.tokens[result.index]
    if not tokens:
        raise InvalidParameterError("the chosen sample generated no tokens; it has no logprob margin")
    span = _answer_tokens(tokens, result.answer)
    chosen = span if span else tokens
    margins = [_margin(token) for token in chosen]
    return AnswerMargin(min(margins), len(chosen), bool(span))


def _answer_tokens(tokens: Sequence[TokenTop], answer: str | None) -> list[TokenTop]:
    text = "".join(t.text for t in tokens)
    start = text.rfind(answer) if answer else -1
    if start < 0:
        return []
    end, offset, picked = start + len(answer), 0, []
    for token in tokens:
        token_end = offset + len(token.text)
        if token_end > start and offset < end:
            picked.append(token)
        offset = token_end
    return picked


def _margin(token: TokenTop) -> float:
    if len(token.top) < 2:
        raise InvalidParameterError(
            f"the logprob margin needs two top logprobs per token, got {len(token.top)}: sample with top_logprobs >= 2"
        )
    return token.top[0] - token.top[1]


def logprob_margin_below(threshold: float | str) -> EscalationRule:
    """Escalate when the answer's least confident token has top-1 minus top-2 logprob below `threshold` (nats)."""
    threshold = _number("logprob_margin_below", "threshold", threshold)
    if threshold < 0:
        raise InvalidParameterError(f"a logprob margin threshold is >= 0, got {threshold}")

    def rule(prompt: Prompt, result: ScalingResult, reference: Any) -> Escalation:
        if result.answer is None:
            return Escalation(True, "no answer")
        found = answer_margin(result)
        where = f"{found.tokens} answer tokens" if found.located else f"all {found.tokens} tokens (answer not verbatim)"
        return Escalation(found.margin < threshold, f"margin {found.margin:.3f} vs {threshold:.3f} over {where}")

    return rule


def any_of(rules: Sequence[EscalationRule]) -> EscalationRule:
    """Escalate when any rule does (every rule runs, so the reason lists each verdict)."""
    if not rules:
        raise InvalidParameterError("any_of needs at least one rule")

    def rule(prompt: Prompt, result: ScalingResult, reference: Any) -> Escalation:
        decisions = [r(prompt, result, reference) for r in rules]
        return Escalation(any(d.escalate for d in decisions), "; ".join(d.reason for d in decisions))

    return rule


BUILTIN_RULES: dict[str, Callable[..., EscalationRule]] = {
    "agreement_below": agreement_below,
    "verifier_fails": verifier_fails,
    "logprob_margin_below": logprob_margin_below,
}


def parse_rule_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'NAME' or 'NAME:key=value,key=value' -> (name, options)."""
    name, _, rest = spec.partition(":")
    if not name.strip():
        raise InvalidParameterError(f"escalation rule spec {spec!r} has no name (expected NAME or NAME:key=value,...)")
    options = {}
    for piece in rest.split(",") if rest else []:
        key, eq, value = piece.partition("=")
        if not eq or not key.strip():
            raise InvalidParameterError(f"escalation rule spec {spec!r}: option {piece!r} is not key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


def escalation_rule(spec: str | Mapping[str, Any] | EscalationRule) -> EscalationRule:
    """A rule from the `llmkit_register_escalation_rules` registry: 'NAME:key=value,...' or
    {"name": NAME, key: value}; a callable is returned as is."""
    from ..plugins import registry

    if callable(spec):
        return spec
    if isinstance(spec, str):
        name, options = parse_rule_spec(spec)
    else:
        options = dict(spec)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise InvalidParameterError(f"escalation rule entry {dict(spec)!r} has no 'name'")
    try:
        factory = registry("escalation_rules").get(name)
    except PluginError as err:
        raise InvalidParameterError(str(err)) from None
    try:
        rule = factory(**options)
    except TypeError as err:
        raise InvalidParameterError(f"escalation rule {name!r}: {err}") from None
    if not callable(rule):
        raise PluginError(f"escalation rule factory {name!r} returned {type(rule).__name__}, which is not callable")
    return rule


def escalation_rule_names() -> list[str]:
    from ..plugins import registry

    return registry("escalation_rules").names()


def _number(rule: str, option: str, value: float | str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{rule}: {option} must be a number, got {value!r}") from None
