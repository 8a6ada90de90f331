"""Batched sampling: rows with different `SamplingParams` in one vectorized pass.

Order: penalties -> temperature -> plugin processors -> top-k -> top-p -> min-p ->
inverse-CDF draw with the row's counter-based uniform. Greedy rows take the argmax
of the penalized logits. Logprobs are those of the raw model distribution.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import torch

from ..plugins import registry
from .params import SamplingParams
from .rng import uniform

_INT64 = 1 << 64


def _as_int64(seed: int) -> int:
    seed %= _INT64
    return seed - _INT64 if seed >= 1 << 63 else seed


@dataclasses.dataclass
class SamplingBatch:
    """The per-row sampling settings of one batch, as tensors."""

    params: list[SamplingParams]
    temperature: torch.Tensor  # [B] float32, 1 for greedy rows
    greedy: torch.Tensor  # [B] bool
    top_k: torch.Tensor  # [B] int64, vocab size when disabled
    top_p: torch.Tensor  # [B] float32
    min_p: torch.Tensor  # [B] float32
    repetition_penalty: torch.Tensor  # [B]
    presence_penalty: torch.Tensor  # [B]
    frequency_penalty: torch.Tensor  # [B]
    seeds: torch.Tensor  # [B] int64
    steps: torch.Tensor  # [B] int64: tokens this row has generated so far
    output_counts: torch.Tensor | None  # [B, V] counts of generated tokens (penalties only)
    seen: torch.Tensor | None  # [B, V] bool: in prompt or output (repetition penalty only)

    @classmethod
    def build(
        cls,
        params: Sequence[SamplingParams],
        seeds: Sequence[int],
        output_ids: Sequence[Sequence[int]],
        prompt_ids: Sequence[Sequence[int]] | None = None,
        vocab_size: int = 0,
        device: torch.device | str = "cpu",
    ) -> SamplingBatch:
        params = list(params)

        def column(values: list, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)

        greedy = column([p.greedy for p in params], torch.bool)
        output_counts = seen = None
        needs_counts = any(p.presence_penalty or p.frequency_penalty for p in params)
        needs_seen = any(p.repetition_penalty != 1.0 for p in params)
        if needs_counts or needs_seen:
            output_counts = token_counts(output_ids, vocab_size, device)
            if needs_seen:
                prompts = prompt_ids or [[] for _ in params]
                seen = (output_counts > 0) | (token_counts(prompts, vocab_size, device) > 0)
        return cls(
            params=params,
            temperature=column([p.temperature if not p.greedy else 1.0 for p in params], torch.float32),
            greedy=greedy,
            top_k=column([p.top_k or vocab_size or 1 << 62 for p in params], torch.int64),
            top_p=column([p.top_p for p in params], torch.float32),
            min_p=column([p.min_p for p in params], torch.float32),
            repetition_penalty=column([p.repetition_penalty for p in params], torch.float32),
            presence_penalty=column([p.presence_penalty for p in params], torch.float32),
            frequency_penalty=column([p.frequency_penalty for p in params], torch.float32),
            seeds=column([_as_int64(s) for s in seeds], torch.int64),
            steps=column([len(o) for o in output_ids], torch.int64),
            output_counts=output_counts,
            seen=seen,
        )


def token_counts(ids: Sequence[Sequence[int]], vocab_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[B, V] occurrence counts of each row's token ids."""
    counts = torch.zeros(len(ids), vocab_size, dtype=torch.int32, device=device)
    lengths = torch.tensor([len(row) for row in ids], device=device)
    flat = torch.tensor(list(itertools.chain.from_iterable(ids)), dtype=torch.int64, device=device)
    rows = torch.repeat_interleave(torch.arange(len(ids), device=device), lengths)
    return counts.index_put_((rows, flat), torch.ones_like(flat, dtype=torch.int32), accumulate=True)


@dataclasses.dataclass
class SampleOutput:
    token_ids: torch.Tensor  # [B] int64
    logprobs: torch.Tensor | None  # [B] float32, logprob of each chosen token
    top_logprob_ids: torch.Tensor | None  # [B, K]
    top_logprobs: torch.Tensor | None  # [B, K]


def apply_penalties(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """Repetition (divide positive / multiply negative logits), then presence and frequency penalties."""
    if batch.seen is not None:
        penalty = batch.repetition_penalty[:, None]
        penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(batch.seen, penalized, logits)
    if batch.output_counts is not None:
        counts = batch.output_counts.to(logits.dtype)
        logits = logits - batch.frequency_penalty[:, None] * counts
        logits = logits - batch.presence_penalty[:, None] * (counts > 0).to(logits.dtype)
    return logits


def apply_plugin_processors(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """Run each named plugin processor once, on the rows that asked for it, in the order they asked."""
    groups: dict[str, tuple[list[int], list[dict]]] = {}
    for row, params in enumerate(batch.params):
        for name, args in params.logits_processors:
            rows, arg_list = groups.setdefault(name, ([], []))
            rows.append(row)
            arg_list.append(dict(args))
    for name, (rows, arg_list) in groups.items():
        index = torch.tensor(rows, device=logits.device)
        processed = registry("samplers").get(name)(logits[index], arg_list)
        logits = logits.index_copy(0, index, processed.to(logits.dtype))
    return logits


def apply_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's top_k tokens, then the smallest prefix whose probability reaches top_p.

    Rows at top_p >= 1 skip the nucleus mask: a float32 running sum reaches 1.0 before the end of a long
    sorted list, and comparing against it would drop tail tokens the row never asked to lose. The sort is
    stable, so which of several tied tokens top-k keeps depends on the row alone, not on the batch.
    """
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
    ranks = torch.arange(logits.shape[-1], device=logits.device)
    sorted_logits = sorted_logits.masked_fill(ranks[None, :] >= top_k[:, None], float("-inf"))
    nucleus_rows = top_p < 1
    if bool(nucleus_rows.any()):
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs
        outside = (mass_before >= top_p[:, None]) & nucleus_rows[:, None]
        sorted_logits = sorted_logits.masked_fill(outside, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)


def apply_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Drop tokens whose probability is below min_p times the most likely token's."""
    probs = logits.softmax(dim=-1)
    threshold = min_p[:, None] * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, float("-inf"))


def draw(logits: torch.Tensor, seeds: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling from softmax(logits) with one counter-based uniform per row."""
    probs = logits.to(torch.float64).softmax(dim=-1)
    cdf = probs.cumsum(dim=-1)
    target = uniform(seeds, steps)[:, None] * cdf[:, -1:]
    token = torch.searchsorted(cdf, target, right=True).squeeze(1)
    return token.clamp_(max=logits.shape[-1] - 1)


def filtered_logits(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """The logits each non-greedy row samples from: penalized, tempered, processed and filtered."""
    scaled = apply_penalties(logits, batch) / batch.temperature[:, None]
    if any(p.logits_processors for p in batch.params):
        scaled = apply_plugin_processors(scaled, batch)
    if any(p.top_k or p.top_p < 1 for p in batch.params):
        scaled = apply_top_k_top_p(scaled, batch.top_k, batch.top_p)
    if any(p.min_p > 0 for p in batch.params):
        scaled = apply_min_p(scaled, batch.min_p)
    return scaled


def argmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """`logits.argmax(-1)` of a [B, V] tensor: the same first maximum (a NaN counting as the maximum), by
    numpy's vectorized argmax for CPU float32 (torch's CPU argmax is a scalar loop: 50 µs for one
    49,152-wide row against numpy's 4, 490 µs for eight against 37, measured with torch 2.13)."""
    if logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.dim() == 2 and not logits.requires_grad:
        return torch.from_numpy(logits.numpy().argmax(-1))
    return logits.argmax(dim=-1)


def plain_argmax(params: Sequence[SamplingParams]) -> bool:
    """True when every row takes the argmax of its raw logits: greedy, no penalties (which greedy rows
    apply; processors and filters they skip), so `sample` would return `logits.argmax(-1)`."""
    return all(
        p.greedy and p.repetition_penalty == 1.0 and not p.presence_penalty and not p.frequency_penalty for p in params
    )


def sample(logits: torch.Tensor, batch: SamplingBatch, with_logprobs: bool | None = None) -> SampleOutput:
    """Choose one token per row of float32 `logits` [B, V]."""
    if bool(batch.greedy.all()):
        tokens = argmax_rows(apply_penalties(logits, batch))
    else:
        drawn = draw(filtered_logits(logits, batch), batch.seeds, batch.steps)
        if bool(batch.greedy.any()):
            drawn = torch.where(batch.greedy, argmax_rows(apply_penalties(logits, batch)), drawn)
        tokens = drawn
    if with_logprobs is None:
        with_logprobs = any(p.logprobs or p.top_logprobs for p in batch.params)
    if not with_logprobs:
        return SampleOutput(tokens, None, None, None)
    logprobs = logits.log_softmax(dim=-1)
    k = max(p.top_logprobs for p in batch.params)
    top = logprobs.topk(k, dim=-1) if k else None
    return SampleOutput(
        tokens,
        logprobs.gather(1, tokens[:, None]).squeeze(1),
        top.indices if top is not None else None,
        top.values if top is not None else None,
    )
