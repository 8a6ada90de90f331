"""Sampling: `SamplingParams`, the batched logits-processor pipeline and the seeded sampler."""

from .params import SamplingParams
from .sampler import SampleOutput, SamplingBatch, sample

__all__ = ["SampleOutput", "SamplingBatch", "SamplingParams", "sample"]
