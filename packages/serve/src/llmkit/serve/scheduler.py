"""`Scheduler`: continuous batching under a sequence cap and a per-step token budget.

Each step: running sequences first (decodes take one token, unfinished prefills take a
chunk), then waiting sequences in policy order while budget, sequence slots and KV blocks
last. A long prompt is split across steps (chunked prefill) and mixed with decodes; a chunk
cut short by the budget ends on a KV-block boundary whenever the budget reaches one, so a
quantized cache's per-block scales never depend on where the batch cut it (docs/serve.md). When
blocks run out, the policy's victim is preempted by recompute: its blocks are freed and it
waits to be prefilled again (prompt plus what it generated so far).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from .block_manager import BlockManager
from .sequence import Sequence, SequenceStatus


class SchedulingPolicy(Protocol):
    """Which waiting sequence goes next, and which running sequence gives up its blocks."""

    def next_waiting(self, waiting: deque[Sequence]) -> Sequence: ...

    def victim(self, running: list[Sequence]) -> Sequence: ...


class FirstComeFirstServed:
    """Oldest waiting first; the most recently admitted running sequence is preempted first."""

    def next_waiting(self, waiting: deque[Sequence]) -> Sequence:
        return waiting[0]

    def victim(self, running: list[Sequence]) -> Sequence:
        return running[-1]


@dataclasses.dataclass
class ScheduledBatch:
    """What one engine step computes: `(sequence, number of new tokens)` in order."""

    sequences: list[tuple[Sequence, int]]
    preempted: list[Sequence]

    @property
    def num_tokens(self) -> int:
        return sum(n for _, n in self.sequences)

    @property
    def is_empty(self) -> bool:
        return not self.sequences


class Scheduler:
    def __init__(
        self,
        block_manager: BlockManager,
        max_num_seqs: int = 64,
        max_num_batched_tokens: int = 2048,
        policy: SchedulingPolicy | None = None,
    ):
        if max_num_seqs < 1 or max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")
        self.block_manager = block_manager
        self.max_num_seqs, self.max_num_batched_tokens = max_num_seqs, max_num_batched_tokens
        self.policy = policy or FirstComeFirstServed()
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self.on_release: Callable[[Sequence], None] | None = None  # told when a sequence gives up its blocks

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> ScheduledBatch:
        budget = self.max_num_batched_tokens
        scheduled: list[tuple[Sequence, int]] = []
        preempted: list[Sequence] = []
        for seq in list(self.running):
            if budget == 0:
                break
            if seq.status is not SequenceStatus.RUNNING:  # preempted earlier in this loop
                continue
            count = self._chunk(seq.num_computed_tokens, seq.num_uncomputed_tokens, budget)
            while not self.block_manager.allocate_for(seq, count):
                already = {id(s) for s, _ in scheduled}
                victim = self.policy.victim([s for s in self.running if id(s) not in already])
                self._preempt(victim)
                preempted.append(victim)
                if victim is seq:
                    break
            if seq.status is SequenceStatus.RUNNING:
                scheduled.append((seq, count))
                budget -= count
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs and not preempted:
            seq = self.policy.next_waiting(self.waiting)
            cached = len(self.block_manager.cached_prefix_blocks(seq)) * self.block_manager.block_size
            count = self._chunk(cached, seq.num_tokens - cached, budget)
            if not self.block_manager.admit(seq, count):
                break
            self.waiting.remove(seq)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            scheduled.append((seq, count))
            budget -= count
        return ScheduledBatch(scheduled, preempted)

    def _chunk(self, start: int, wanted: int, budget: int) -> int:
        """How many of the `wanted` tokens from position `start` fit this step: all of them, or a chunk
        ending on the last block boundary the budget reaches (the whole budget if it reaches none)."""
        if wanted <= budget:
            return wanted
        block_size = self.block_manager.block_size
        aligned = (start + budget) // block_size * block_size - start
        return aligned if aligned > 0 else budget

    def finish(self, seq: Sequence) -> None:
        """Remove a sequence that ended (stopped, hit its length, or was aborted) and free its blocks."""
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
        elif seq.status is SequenceStatus.WAITING and seq in self.waiting:
            self.waiting.remove(seq)
        if not seq.keep_blocks:
            self._release(seq)
        seq.status = SequenceStatus.FINISHED

    def requeue(self, sequences: list[Sequence]) -> None:
        """Put running sequences back at the head of the queue, blocks freed, to be recomputed (as a
        preemption does, but not counted as one): a failed step is undone this way."""
        for seq in sequences:
            if seq.status is SequenceStatus.RUNNING:
                self.running.remove(seq)
                self._release(seq)
                seq.status = SequenceStatus.WAITING
        requeued = [s for s in sequences if s.status is SequenceStatus.WAITING]
        ids = {id(s) for s in requeued}
        self.waiting = deque(requeued + [s for s in self.waiting if id(s) not in ids])

    @contextlib.contextmanager
    def only(self, sequences: list[Sequence]) -> Iterator[None]:
        """Schedule nothing but `sequences` inside the block; every other sequence keeps its place
        (and its blocks). Afterwards the chosen ones go first: running with the running, waiting at the head."""
        chosen = {id(s) for s in sequences}
        other_waiting = deque(s for s in self.waiting if id(s) not in chosen)
        other_running = [s for s in self.running if id(s) not in chosen]
        self.waiting = deque(s for s in self.waiting if id(s) in chosen)
        self.running = [s for s in self.running if id(s) in chosen]
        try:
            yield
        finally:
            self.running = other_running + self.running
            self.waiting = deque(list(self.waiting) + list(other_waiting))

    def _release(self, seq: Sequence) -> None:
        seq.draft_token_ids, seq.draft_probs = [], None
        if self.on_release is not None:
            self.on_release(seq)
        self.block_manager.free(seq)

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self._release(seq)
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)
