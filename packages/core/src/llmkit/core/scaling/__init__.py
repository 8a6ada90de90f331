"""Inference-time scaling: sample N, then vote, score, or verify and retry (see docs/scaling.md)."""

from .answers import ANSWER_KINDS, answer_extractor, choice_answer, code_answer, exact_answer, number_answer
from .cascade import CascadeResult, Tier, cascade, resolve_rule
from .escalation import (
    AnswerMargin,
    Escalation,
    EscalationRule,
    agreement_below,
    answer_margin,
    any_of,
    escalation_rule,
    escalation_rule_names,
    logprob_margin_below,
    verifier_fails,
)
from .sampling import BackendSampler, Prompt, SampleBatch, Sampler, TokenTop
from .strategies import (
    STRATEGIES,
    ScalingCost,
    ScalingResult,
    best_of_n,
    run_strategy,
    self_consistency,
    verify_and_retry,
    weighted_vote_strategy,
)
from .voting import majority_vote, vote_totals, weighted_vote

__all__ = [
    "ANSWER_KINDS",
    "STRATEGIES",
    "AnswerMargin",
    "BackendSampler",
    "CascadeResult",
    "Escalation",
    "EscalationRule",
    "Prompt",
    "SampleBatch",
    "Sampler",
    "ScalingCost",
    "ScalingResult",
    "Tier",
    "TokenTop",
    "agreement_below",
    "answer_extractor",
    "answer_margin",
    "any_of",
    "best_of_n",
    "cascade",
    "choice_answer",
    "code_answer",
    "escalation_rule",
    "escalation_rule_names",
    "exact_answer",
    "logprob_margin_below",
    "majority_vote",
    "number_answer",
    "resolve_rule",
    "run_strategy",
    "self_consistency",
    "verifier_fails",
    "verify_and_retry",
    "vote_totals",
    "weighted_vote",
    "weighted_vote_strategy",
]
