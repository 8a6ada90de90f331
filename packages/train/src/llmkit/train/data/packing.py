"""Packing and padding: sequences to [batch, time] tensors with per-sequence positions and segment ids.

A packed row holds several sequences back to back; each restarts its positions at 0 and gets its own
segment id, so `DenseCausalAttention` keeps them from attending to each other, and the first token of
each sequence is never a target (nothing before it in its own sequence predicts it).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

import torch

from .encoding import TokenizedSequence


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of total length <= capacity: longest first, each into the fullest bin
    that still has room (ties and order deterministic)."""
    if any(length > capacity for length in lengths):
        raise ValueError(f"a sequence is longer than the bin capacity {capacity}")
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        slot = bisect.bisect_left(free, (length, -1))
        if slot == len(free):
            bins.append([index])
            bisect.insort(free, (capacity - length, len(bins) - 1))
        else:
            space, which = free.pop(slot)
            bins[which].append(index)
            bisect.insort(free, (space - length, which))
    return bins


@dataclasses.dataclass
class TokenBatch:
    """[B, T] tensors of one micro-batch. `targets[b, t]`: token t is predicted from position t - 1."""

    input_ids: torch.Tensor
    positions: torch.Tensor
    segment_ids: torch.Tensor
    valid: torch.Tensor
    targets: torch.Tensor

    @property
    def num_targets(self) -> int:
        return int(self.targets.sum())

    @property
    def num_tokens(self) -> int:
        return int(self.valid.sum())

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(*(t.to(device) for t in dataclasses.astuple(self)))

    def rows(self, index: slice | list[int]) -> TokenBatch:
        return TokenBatch(*(t[index] for t in dataclasses.astuple(self)))


def collate(rows: Sequence[Sequence[TokenizedSequence]], pad_id: int, multiple_of: int = 1) -> TokenBatch:
    """Rows of one or more sequences each, right-padded to the longest row (rounded up to `multiple_of`)."""
    width = max(sum(len(s) for s in row) for row in rows)
    width = -(-width // multiple_of) * multiple_of
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    positions = torch.zeros(shape, dtype=torch.long)
    segment_ids = torch.full(shape, -1, dtype=torch.long)
    valid = torch.zeros(shape, dtype=torch.bool)
    targets = torch.zeros(shape, dtype=torch.bool)
    for r, row in enumerate(rows):
        offset = 0
        for s, seq in enumerate(row):
            n = len(seq)
            span = slice(offset, offset + n)
            input_ids[r, span] = torch.tensor(seq.ids, dtype=torch.long)
            positions[r, span] = torch.arange(n)
            segment_ids[r, span] = s
            valid[r, span] = True
            targets[r, span] = torch.tensor(seq.targets, dtype=torch.bool)
            targets[r, offset] = False
            offset += n
    return TokenBatch(input_ids, positions, segment_ids, valid, targets)


def pack(sequences: Sequence[TokenizedSequence], max_length: int) -> list[list[TokenizedSequence]]:
    """Rows of at most `max_length` tokens by best-fit decreasing."""
    bins = best_fit_decreasing([len(s) for s in sequences], max_length)
    return [[sequences[i] for i in sorted(group)] for group in bins]
