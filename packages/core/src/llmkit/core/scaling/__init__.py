"""Inference-time scaling: sample N, then vote, score, or verify and retry (see docs/scaling.md)."""

from .answers import ANSWER_KINDS, answer_extractor, choice_answer, code_answer, exact_answer, number_answer
from .cascade import CascadeResult, Escalation, Tier, agreement_below, cascade, verifier_fails
from .sampling import BackendSampler, Prompt, SampleBatch, Sampler
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
    "BackendSampler",
    "CascadeResult",
    "Escalation",
    "Prompt",
    "SampleBatch",
    "Sampler",
    "ScalingCost",
    "ScalingResult",
    "Tier",
    "agreement_below",
    "answer_extractor",
    "best_of_n",
    "cascade",
    "choice_answer",
    "code_answer",
    "exact_answer",
    "majority_vote",
    "number_answer",
    "run_strategy",
    "self_consistency",
    "verifier_fails",
    "verify_and_retry",
    "vote_totals",
    "weighted_vote",
    "weighted_vote_strategy",
]
