"""Sampling: `SamplingParams`, the batched logits-processor pipeline and the seeded sampler."""

from .params import SamplingParams
from .sampler import SampleOutput, SamplingBatch, argmax_rows, plain_argmax, sample
from .thinking import ThinkingBudget, force_thinking_budgets

__all__ = [
    "SampleOutput",
    "SamplingBatch",
    "SamplingParams",
    "ThinkingBudget",
    "argmax_rows",
    "force_thinking_budgets",
    "plain_argmax",
    "sample",
]
