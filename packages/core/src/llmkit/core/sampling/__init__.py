"""Sampling: `SamplingParams`, the batched logits-processor pipeline and the seeded sampler."""

from .params import SamplingParams
from .sampler import SampleOutput, SamplingBatch, plain_argmax, sample
from .thinking import ThinkingBudget, force_thinking_budgets

__all__ = [
    "SampleOutput",
    "SamplingBatch",
    "SamplingParams",
    "ThinkingBudget",
    "force_thinking_budgets",
    "plain_argmax",
    "sample",
]
