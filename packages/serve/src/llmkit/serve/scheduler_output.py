"""`SchedulerOutput`: what one engine step computes, decided by `Scheduler.schedule()` and read (never
changed) by `ModelRunner.execute()` and `Scheduler.update_from_output()`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .sequence import Sequence

if TYPE_CHECKING:
    from .vision import ImagePrompt


@dataclasses.dataclass(frozen=True)
class ScheduledSequence:
    """One sequence's part of a step: which tokens at which positions, in which blocks."""

    seq: Sequence
    num_tokens: int  # tokens this step computes, drafts included
    num_computed_tokens: int  # tokens already in the KV cache: the first position computed now
    token_ids: tuple[int, ...]  # the num_tokens tokens fed to the model
    block_table: tuple[int, ...]  # KV blocks holding positions [0, num_computed_tokens + num_tokens)
    draft_token_ids: tuple[int, ...]  # proposed tokens to verify (the tail of token_ids)
    is_decode: bool  # one new token after a fully computed context (else a prefill chunk)
    samples: bool  # the chunk reaches the last known token: the step yields new tokens for it
    images: ImagePrompt | None = None  # the prompt's images: their embeddings go in at their image-token positions

    @classmethod
    def of(cls, seq, num_tokens: int) -> ScheduledSequence:
        """A snapshot of `seq` (anything with the Sequence's token and block fields) computing `num_tokens`."""
        start, drafts = seq.num_computed_tokens, tuple(seq.draft_token_ids)
        return cls(
            seq=seq,
            num_tokens=num_tokens,
            num_computed_tokens=start,
            token_ids=tuple(seq.tokens_at(start, num_tokens)),
            block_table=tuple(seq.block_table),
            draft_token_ids=drafts,
            is_decode=num_tokens == 1 and start == seq.num_tokens - 1,
            samples=start + num_tokens == seq.num_tokens + len(drafts),
            images=seq.images,
        )

    @property
    def positions(self) -> range:
        return range(self.num_computed_tokens, self.num_computed_tokens + self.num_tokens)


@dataclasses.dataclass(frozen=True)
class SchedulerOutput:
    """The sequences one step runs, in scheduling order, and those preempted to make room.
    `ended_request_ids`: requests that ended without running (a grammar that failed to compile),
    reported by this step's update."""

    scheduled: tuple[ScheduledSequence, ...] = ()
    preempted: list[Sequence] = dataclasses.field(default_factory=list)
    ended_request_ids: tuple[str, ...] = ()

    @property
    def sequences(self) -> list[tuple[Sequence, int]]:
        """`(sequence, number of new tokens)` pairs, in order."""
        return [(s.seq, s.num_tokens) for s in self.scheduled]

    def __iter__(self) -> Iterator[tuple[Sequence, int]]:
        return iter(self.sequences)

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled

    @property
    def request_ids(self) -> list[str]:
        """The requests with a sequence in the step, each once, in order."""
        return list(dict.fromkeys(s.seq.request_id for s in self.scheduled))
