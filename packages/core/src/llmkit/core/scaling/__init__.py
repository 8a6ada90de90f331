"""Inference-time scaling: sample N, then vote, score, or verify and retry (see docs/scaling.md)."""

from .answers import ANSWER_KINDS, answer_extractor, choice_answer, code_answer, exact_answer, number_answer
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
    "Prompt",
    "SampleBatch",
    "Sampler",
    "ScalingCost",
    "ScalingResult",
    "answer_extractor",
    "best_of_n",
    "choice_answer",
    "code_answer",
    "exact_answer",
    "majority_vote",
    "number_answer",
    "run_strategy",
    "self_consistency",
    "verify_and_retry",
    "vote_totals",
    "weighted_vote",
    "weighted_vote_strategy",
]
