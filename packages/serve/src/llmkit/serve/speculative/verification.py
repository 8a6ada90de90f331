"""Verify drafted tokens against the target model's distributions.

Temperature 0: accept while a draft equals the target's argmax; emit the argmax at the first
mismatch, or a bonus token when every draft is accepted. Sampling: accept draft d with
probability min(1, p(d) / q(d)), on rejection draw from norm(max(0, p - q)), and draw a bonus
from p when all pass — the rule that leaves the output distributed exactly as the target's
(Leviathan et al., Chen et al., 2023). A deterministic proposer has q = a point mass on d.
Randomness is counter-based per (seed, step), as in core's sampler.
"""

from __future__ import annotations

import dataclasses

import torch

from llmkit.core.sampling import SamplingBatch
from llmkit.core.sampling.rng import uniform
from llmkit.core.sampling.sampler import apply_penalties, filtered_logits

from ..sequence import Sequence

ACCEPT_SALT = 0x2545F4914F6CDD1D  # a different stream of uniforms for the accept test


@dataclasses.dataclass
class Verdict:
    tokens: list[int]  # accepted drafts, then the correction or bonus token
    rows: list[int]  # logit row that produced each token (for logprobs)
    accepted_drafts: int


def _draw(probs: torch.Tensor, u: float) -> int:
    cdf = probs.cumsum(0)
    index = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])], dtype=cdf.dtype), right=True))
    return min(index, probs.shape[0] - 1)


def verify(logits: torch.Tensor, sequences: list[Sequence], spans: list[tuple[int, int]]) -> list[Verdict]:
    """`logits` [R, V] hold, for each sequence, rows spans[i] = (first, count): the distribution after its
    last token and after each of its count - 1 drafts."""
    params, seeds, outputs, prompts = [], [], [], []
    for seq, (_, count) in zip(sequences, spans, strict=True):
        for i in range(count):
            params.append(seq.params)
            seeds.append(seq.seed)
            outputs.append(seq.output_token_ids + seq.draft_token_ids[:i])
            prompts.append(seq.prompt_token_ids)
    batch = SamplingBatch.build(params, seeds, outputs, prompts, logits.shape[-1], logits.device)
    greedy_targets = apply_penalties(logits, batch).argmax(-1).tolist()
    probs = None
    if not bool(batch.greedy.all()):
        probs = filtered_logits(logits, batch).to(torch.float64).softmax(-1)
    accept_u = uniform(batch.seeds ^ ACCEPT_SALT, batch.steps).tolist()
    draw_u = uniform(batch.seeds, batch.steps).tolist()
    return [
        _verify_one(seq, first, count, greedy_targets, probs, accept_u, draw_u)
        for seq, (first, count) in zip(sequences, spans, strict=True)
    ]


def _verify_one(seq: Sequence, first: int, count: int, greedy_targets, probs, accept_u, draw_u) -> Verdict:
    drafts = seq.draft_token_ids[: count - 1]
    tokens, rows = [], []
    for i, draft in enumerate(drafts):
        row = first + i
        if seq.params.greedy:
            target = greedy_targets[row]
            tokens.append(target)
            rows.append(row)
            if target != draft:
                return Verdict(tokens, rows, i)
            continue
        p = probs[row]
        q_draft = 1.0 if seq.draft_probs is None else float(seq.draft_probs[i, draft])
        if accept_u[row] * q_draft <= float(p[draft]) and q_draft > 0:
            tokens.append(draft)
            rows.append(row)
            continue
        if seq.draft_probs is None:
            residual = p.clone()
            residual[draft] = 0.0
        else:
            residual = (p - seq.draft_probs[i].to(p.dtype)).clamp_(min=0.0)
        if float(residual.sum()) <= 0.0:  # p == q: rejection has probability 0; guard rounding
            residual = p
        tokens.append(_draw(residual, draw_u[row]))
        rows.append(row)
        return Verdict(tokens, rows, i)
    last = first + len(drafts)
    tokens.append(greedy_targets[last] if seq.params.greedy else _draw(probs[last], draw_u[last]))
    rows.append(last)
    return Verdict(tokens, rows, len(drafts))
