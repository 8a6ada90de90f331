"""Proposers: where draft tokens come from. A proposer is a small interface; new ones plug in."""

from __future__ import annotations

import abc
import dataclasses
from typing import Protocol

import numpy as np
import torch

from llmkit.core.sampling import SamplingBatch
from llmkit.core.sampling.rng import uniform
from llmkit.core.sampling.sampler import apply_penalties, argmax_rows, filtered_logits

from ..scheduler_output import ScheduledSequence, SchedulerOutput
from ..sequence import Sequence

DRAFT_SALT = 0x6A09E667F3BCC909  # draft sampling draws from its own uniform stream


@dataclasses.dataclass
class Proposal:
    token_ids: list[int]
    probs: torch.Tensor | None = None  # [len(token_ids), V] draft distributions; None = deterministic


class Proposer(Protocol):
    name: str

    def propose(self, sequences: list[Sequence], num_tokens: int) -> list[Proposal]:
        """Up to `num_tokens` drafts for each sequence (an empty proposal is fine)."""
        ...

    def release(self, seq: Sequence) -> None:
        """Forget any state kept for a sequence that ended or was preempted."""
        ...


class NgramProposer:
    """Prompt lookup: find the latest earlier occurrence of the sequence's last n tokens
    (n from `max_n` down to `min_n`) and propose the tokens that followed it."""

    name = "ngram"

    def __init__(self, min_n: int = 2, max_n: int = 4):
        if not 1 <= min_n <= max_n:
            raise ValueError(f"need 1 <= min_n <= max_n, got {min_n}, {max_n}")
        self.min_n, self.max_n = min_n, max_n

    def propose(self, sequences: list[Sequence], num_tokens: int) -> list[Proposal]:
        return [Proposal(self._lookup(np.asarray(seq.token_ids(), dtype=np.int64), num_tokens)) for seq in sequences]

    def _lookup(self, tokens: np.ndarray, num_tokens: int) -> list[int]:
        for n in range(min(self.max_n, len(tokens) - 1), self.min_n - 1, -1):
            windows = np.lib.stride_tricks.sliding_window_view(tokens[:-1], n)
            hits = np.flatnonzero((windows == tokens[-n:]).all(axis=1))
            if hits.size:
                start = int(hits[-1]) + n
                return tokens[start : start + num_tokens].tolist()
        return []

    def release(self, seq: Sequence) -> None:
        pass


def sample_drafts(logits: torch.Tensor, sequences: list[Sequence]) -> tuple[list[int], torch.Tensor | None]:
    """Draft tokens from draft-model logits [B, V]: argmax for greedy sequences, else a draw from the
    processed distribution (returned, as q, for the rejection test)."""
    outputs = [seq.output_token_ids + seq.draft_token_ids for seq in sequences]
    batch = SamplingBatch.build(
        [s.params for s in sequences],
        [s.seed ^ DRAFT_SALT for s in sequences],
        outputs,
        [s.prompt_token_ids for s in sequences],
        logits.shape[-1],
        logits.device,
    )
    if bool(batch.greedy.all()):
        return argmax_rows(apply_penalties(logits, batch)).tolist(), None
    probs = filtered_logits(logits, batch).to(torch.float64).softmax(-1)
    cdf = probs.cumsum(-1)
    u = uniform(batch.seeds, batch.steps)[:, None] * cdf[:, -1:]
    drawn = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=logits.shape[-1] - 1)
    greedy = argmax_rows(apply_penalties(logits, batch))
    tokens = torch.where(batch.greedy, greedy, drawn)
    one_hot = torch.zeros_like(probs).scatter_(1, greedy[:, None], 1.0)
    probs = torch.where(batch.greedy[:, None], one_hot, probs)
    return tokens.tolist(), probs.to(torch.float32)


class AutoregressiveDrafter(abc.ABC):
    """Shared loop of model-based proposers: k steps of a cheaper forward, each feeding the last draft."""

    @abc.abstractmethod
    def draft_logits(self, sequences: list[Sequence], step: int) -> torch.Tensor:
        """Logits [B, V] for the token after each sequence's tokens plus its drafts so far."""

    def propose(self, sequences: list[Sequence], num_tokens: int) -> list[Proposal]:
        if not sequences:
            return []
        for seq in sequences:
            seq.draft_token_ids, seq.draft_probs = [], None
        rows: list[list[torch.Tensor]] = [[] for _ in sequences]
        for step in range(num_tokens):
            logits = self.draft_logits(sequences, step)
            tokens, probs = sample_drafts(logits, sequences)
            for i, seq in enumerate(sequences):
                seq.draft_token_ids.append(tokens[i])
                if probs is not None:
                    rows[i].append(probs[i])
        proposals = [
            Proposal(list(seq.draft_token_ids), torch.stack(rows[i]) if rows[i] else None)
            for i, seq in enumerate(sequences)
        ]
        for seq in sequences:
            seq.draft_token_ids = []
        return proposals


class EarlyExitProposer(AutoregressiveDrafter):
    """Self-speculation: the target's first `num_layers` layers, its final norm and head draft the tokens.
    The drafts' early-layer K/V go into the target's own cache at the draft positions; verification
    recomputes every layer there, so nothing stale survives."""

    name = "early_exit"

    def __init__(self, runner, num_layers: int):
        total = runner.model.config.num_layers
        if not 1 <= num_layers < total:
            raise ValueError(f"early-exit layers must be in [1, {total - 1}], got {num_layers}")
        self.runner, self.num_layers = runner, num_layers

    def draft_logits(self, sequences: list[Sequence], step: int) -> torch.Tensor:
        positions = [seq.num_tokens - 1 + len(seq.draft_token_ids) for seq in sequences]
        tokens = [(seq.token_ids() + seq.draft_token_ids)[p] for seq, p in zip(sequences, positions, strict=True)]
        return self.runner.decode_logits(sequences, tokens, positions, self.num_layers)

    def release(self, seq: Sequence) -> None:
        pass


class _Shadow:
    """The draft model's view of one target sequence: its tokens and what its own cache holds."""

    shares_prefix = False
    images = None  # the draft model reads token ids only

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.num_computed_tokens = 0
        self.block_table: list[int] = []
        self.draft_token_ids: list[int] = []

    def token_ids(self) -> list[int]:
        return self.tokens

    def tokens_at(self, start: int, count: int) -> list[int]:
        return self.tokens[start : start + count]

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def is_decoding(self) -> bool:
        return self.num_computed_tokens == self.num_tokens - 1


class DraftModelProposer(AutoregressiveDrafter):
    """A smaller model with the same tokenizer drafts the tokens, over its own paged KV cache.
    Each proposal first catches its cache up with the tokens the target accepted (rolling back
    rejected drafts), then decodes the drafts."""

    name = "draft"

    def __init__(self, runner, block_manager):
        self.runner, self.blocks = runner, block_manager
        self.shadows: dict[int, _Shadow] = {}

    def propose(self, sequences: list[Sequence], num_tokens: int) -> list[Proposal]:
        ready = [seq for seq in sequences if self._sync(seq, num_tokens)]
        drafted = dict(zip((s.seq_id for s in ready), super().propose(ready, num_tokens), strict=True))
        return [drafted.get(seq.seq_id, Proposal([])) for seq in sequences]

    def _sync(self, seq: Sequence, num_tokens: int) -> bool:
        shadow = self.shadows.setdefault(seq.seq_id, _Shadow())
        tokens = seq.token_ids()
        common = 0
        for mine, theirs in zip(shadow.tokens, tokens, strict=False):
            if mine != theirs:
                break
            common += 1
        shadow.num_computed_tokens = min(shadow.num_computed_tokens, common)
        shadow.tokens = list(tokens)
        self.blocks.trim(shadow, shadow.num_computed_tokens)
        needed = len(tokens) - shadow.num_computed_tokens + num_tokens - 1
        if not self.blocks.allocate_for(shadow, needed):
            self.release(seq)
            return False
        return True

    def draft_logits(self, sequences: list[Sequence], step: int) -> torch.Tensor:
        shadows = [self.shadows[seq.seq_id] for seq in sequences]
        if step == 0:  # catch up: everything the draft cache lacks, ending with the last accepted token
            batch = SchedulerOutput(
                tuple(ScheduledSequence.of(s, s.num_tokens - s.num_computed_tokens) for s in shadows)
            )
            inputs, ordered = self.runner.prepare(batch)
            hidden = self.runner.forward(inputs)
            rows = {id(s.seq): r[-1] for s, r in zip(ordered, inputs.logit_rows, strict=True)}
            for shadow in shadows:
                shadow.num_computed_tokens = shadow.num_tokens
            return self.runner.logits(hidden, [rows[id(s)] for s in shadows])
        positions = []
        for seq, shadow in zip(sequences, shadows, strict=True):
            shadow.tokens.append(seq.draft_token_ids[-1])
            positions.append(shadow.num_tokens - 1)
            shadow.num_computed_tokens += 1
        return self.runner.decode_logits(shadows, [s.tokens[-1] for s in shadows], positions)

    def release(self, seq: Sequence) -> None:
        shadow = self.shadows.pop(seq.seq_id, None)
        if shadow is not None:
            self.blocks.free(shadow)
