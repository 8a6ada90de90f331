"""Fast log-likelihood scoring for models loaded in this process: batched, one forward per shared context.

Same tokenization and numbers as core's `ModelBackend.loglikelihood` (lm-evaluation-harness
semantics); when every continuation of a context is a single token (MMLU's letters), one forward
of the context scores them all, and logits are computed only at the positions that are scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from llmkit.core.backends import Loglikelihood
from llmkit.core.errors import ContextLengthError, InvalidParameterError
from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.pretrained import Pretrained


@dataclasses.dataclass
class _Row:
    tokens: list[int]
    first_scored: int  # position whose logits predict the first scored token
    targets: list[list[int]]  # per request: the token ids it scores (single-token groups: one each)
    request_indices: list[int]


def split_tokens(pretrained: Pretrained, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as core's reference backend splits them."""
    tokenizer = pretrained.tokenizer
    context_ids = tokenizer.encode(context, add_special_tokens=True) if context else []
    whole = tokenizer.encode(context + continuation, add_special_tokens=True)
    if whole[: len(context_ids)] != context_ids:
        whole = context_ids + tokenizer.encode(continuation)
    continuation_ids = whole[len(context_ids) :]
    if not continuation_ids:
        raise InvalidParameterError(f"continuation {continuation!r} has no tokens")
    if not context_ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_ids[0]
        context_ids = [start]
    return context_ids, continuation_ids


def _rows(pretrained: Pretrained, requests: Sequence[tuple[str, str]]) -> list[_Row]:
    groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for index, (context, continuation) in enumerate(requests):
        context_ids, continuation_ids = split_tokens(pretrained, context, continuation)
        groups.setdefault(tuple(context_ids), []).append((index, continuation_ids))
    rows = []
    for context_ids, members in groups.items():
        if all(len(ids) == 1 for _, ids in members):
            rows.append(
                _Row(list(context_ids), len(context_ids) - 1, [ids for _, ids in members], [i for i, _ in members])
            )
        else:
            rows += [_Row([*context_ids, *ids], len(context_ids) - 1, [ids], [i]) for i, ids in members]
    return rows


@torch.inference_mode()
def local_loglikelihood(
    pretrained: Pretrained, requests: Sequence[tuple[str, str]], max_batch_tokens: int = 4096
) -> list[Loglikelihood]:
    """log P(continuation | context) for each request, in input order."""
    model = pretrained.model
    limit = pretrained.config.max_position_embeddings
    results: list[Loglikelihood | None] = [None] * len(requests)
    rows = sorted(_rows(pretrained, requests), key=lambda r: len(r.tokens))
    batch: list[_Row] = []
    for row in rows:
        if len(row.tokens) > limit:
            raise ContextLengthError(f"context + continuation has {len(row.tokens)} tokens; the model holds {limit}")
        if batch and (len(batch) + 1) * len(row.tokens) > max_batch_tokens:
            _score_batch(model, batch, results)
            batch = []
        batch.append(row)
    if batch:
        _score_batch(model, batch, results)
    return results  # type: ignore[return-value]


def _score_batch(model, batch: list[_Row], results: list) -> None:
    device = model.device
    length = max(len(r.tokens) for r in batch)
    ids = torch.zeros(len(batch), length, dtype=torch.int64, device=device)
    valid = torch.zeros(len(batch), length, dtype=torch.bool, device=device)
    for i, row in enumerate(batch):  # right padding: real tokens never see the padding
        ids[i, : len(row.tokens)] = torch.tensor(row.tokens)
        valid[i, : len(row.tokens)] = True
    positions = torch.arange(length, device=device).repeat(len(batch))
    hidden = model(ids.flatten(), positions, DenseCausalAttention(len(batch), length, valid, device=device))
    hidden = hidden.view(len(batch), length, -1)
    for i, row in enumerate(batch):
        count = max(len(t) for t in row.targets) if len(row.targets) == 1 else 1
        logprobs = model.compute_logits(hidden[i, row.first_scored : row.first_scored + count]).log_softmax(-1)
        greedy = logprobs.argmax(-1)
        for request_index, target in zip(row.request_indices, row.targets, strict=True):
            target_ids = torch.tensor(target, device=device)
            rows_used = logprobs[: len(target)]
            chosen = rows_used.gather(1, target_ids[:, None]).squeeze(1)
            results[request_index] = Loglikelihood(
                float(chosen.sum()), bool((greedy[: len(target)] == target_ids).all()), len(target)
            )
