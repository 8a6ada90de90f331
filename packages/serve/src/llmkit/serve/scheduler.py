"""`Scheduler`: continuous batching under a sequence cap and a per-step token budget, and the owner of
every sequence's status.

`schedule() -> SchedulerOutput`: running sequences first (decodes take one token, or one plus their
drafts; unfinished prefills take a chunk), then waiting sequences in policy order while budget,
sequence slots and KV blocks last. A long prompt is split across steps (chunked prefill) and mixed
with decodes; a chunk cut short by the budget ends on a KV-block boundary whenever the budget reaches
one, so a quantized cache's per-block scales never depend on where the batch cut it (docs/serve.md).
When blocks run out, the policy's victim is preempted by recompute: its blocks are
freed and it waits to be prefilled again (prompt plus what it generated so far).
`update_from_output(SchedulerOutput, RunnerOutput) -> list[RequestOutput]`: see `update.py`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from .block_manager import BlockManager
from .output_processor import OutputProcessor
from .outputs import RequestOutput
from .request import Request
from .runner_output import RunnerOutput
from .scheduler_output import ScheduledSequence, SchedulerOutput
from .sequence import Sequence, SequenceStatus
from .update import apply_runner_output

if TYPE_CHECKING:
    from .speculative import Speculator
    from .structured import GrammarManager

logger = logging.getLogger(__name__)


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


class Scheduler:
    def __init__(
        self,
        block_manager: BlockManager,
        max_num_seqs: int = 64,
        max_num_batched_tokens: int = 2048,
        policy: SchedulingPolicy | None = None,
        *,
        grammars: GrammarManager | None = None,
        speculator: Speculator | None = None,
    ):
        if max_num_seqs < 1 or max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")
        self.block_manager = block_manager
        self.max_num_seqs, self.max_num_batched_tokens = max_num_seqs, max_num_batched_tokens
        self.policy = policy or FirstComeFirstServed()
        self.grammars, self.speculator = grammars, speculator
        self.requests: dict[str, Request] = {}  # every request not yet reported finished
        self.output_processor = OutputProcessor(self.requests)
        self.waiting: deque[Sequence] = deque()  # WAITING
        self.running: list[Sequence] = []  # RUNNING
        self.waiting_for_grammar: list[Request] = []  # their sequences are WAITING_FOR_GRAMMAR
        self.waiting_for_remote_kv: list[Sequence] = []  # WAITING_FOR_REMOTE_KV, blocks reserved
        self.num_preemptions = 0

    # --- admission ----------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def add_request(self, request: Request) -> None:
        """Queue a request's sequences, or park them (WAITING_FOR_GRAMMAR) while `request.grammar_future` runs."""
        self.requests[request.request_id] = request
        if request.grammar_future is not None:
            for seq in request.sequences:
                seq.status = SequenceStatus.WAITING_FOR_GRAMMAR
            self.waiting_for_grammar.append(request)
            return
        for seq in request.sequences:
            self.add(seq)

    def reserve_remote_kv(self, seq: Sequence) -> bool:
        """Take a waiting sequence whose prompt K/V another worker computed: reserve blocks for its whole
        prompt and wait (WAITING_FOR_REMOTE_KV) until `remote_kv_arrived`. False: no free blocks (it ends)."""
        self.waiting.remove(seq)
        seq.imported = True
        if not self.block_manager.admit(seq, len(seq.prompt_token_ids)):
            self.requests.pop(seq.request_id, None)
            seq.status = SequenceStatus.FINISHED_ERROR
            return False
        seq.status = SequenceStatus.WAITING_FOR_REMOTE_KV
        self.waiting_for_remote_kv.append(seq)
        return True

    def remote_kv_arrived(self, seq: Sequence) -> None:
        """The prompt's K/V are in the reserved blocks: all but the last prompt token count as computed,
        so the first output token is sampled here like any other."""
        if seq.status is not SequenceStatus.WAITING_FOR_REMOTE_KV:  # aborted meanwhile
            return
        self.waiting_for_remote_kv.remove(seq)
        seq.num_computed_tokens = len(seq.prompt_token_ids) - 1
        seq.status = SequenceStatus.RUNNING
        self.running.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running or self.waiting_for_grammar)

    # --- the step -----------------------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        ended = self._admit_compiled_grammars()
        if self.speculator is not None:
            self.speculator.propose(self.running)
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
                if len(seq.draft_token_ids) > count - 1:  # the token budget cuts the verification short
                    seq.draft_token_ids = seq.draft_token_ids[: count - 1]
                    seq.draft_probs = None if seq.draft_probs is None else seq.draft_probs[: count - 1]
                scheduled.append((seq, count))
                budget -= count
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs and not preempted:
            seq = self.policy.next_waiting(self.waiting)
            if self._sibling_computes_shared_prompt(seq):
                break
            cached = len(self.block_manager.cached_prefix_blocks(seq)) * self.block_manager.block_size
            count = self._chunk(cached, seq.num_tokens - cached, budget)
            if not self.block_manager.admit(seq, count):
                break
            self.waiting.remove(seq)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            scheduled.append((seq, count))
            budget -= count
        return SchedulerOutput(tuple(ScheduledSequence.of(s, n) for s, n in scheduled), preempted, tuple(ended))

    def _sibling_computes_shared_prompt(self, seq: Sequence) -> bool:
        """The n samples of a request share the prompt's full blocks: while a sibling still computes them, `seq`
        waits for them to reach the prefix cache (next step) instead of computing the prompt again."""
        if not (self.block_manager.enable_prefix_caching and seq.shares_prefix):
            return False
        shared = (len(seq.prompt_token_ids) - 1) // self.block_manager.block_size * self.block_manager.block_size
        request = self.requests.get(seq.request_id)
        if shared == 0 or request is None:
            return False
        return any(
            other is not seq and other.status is SequenceStatus.RUNNING and other.num_computed_tokens < shared
            for other in request.sequences
        )

    def _chunk(self, start: int, wanted: int, budget: int) -> int:
        """How many of the `wanted` tokens from position `start` fit this step: all of them, or a chunk
        ending on the last block boundary the budget reaches (the whole budget if it reaches none)."""
        if wanted <= budget:
            return wanted
        block_size = self.block_manager.block_size
        aligned = (start + budget) // block_size * block_size - start
        return aligned if aligned > 0 else budget

    def update_from_output(self, output: SchedulerOutput, result: RunnerOutput) -> list[RequestOutput]:
        """Apply a step's results: computed tokens, new tokens (grammar, drafts, stops), finished
        sequences' blocks freed; one `RequestOutput` per request that ran or ended."""
        produced = apply_runner_output(self, output, result)
        return self.report_ended(output) + produced

    def report_ended(self, output: SchedulerOutput) -> list[RequestOutput]:
        """Reports of the requests that ended without running when `output` was scheduled."""
        return [self.output_processor.report_ended(r) for r in output.ended_request_ids if r in self.requests]

    def _admit_compiled_grammars(self) -> list[str]:
        """Queue the requests whose grammar is compiled; end those whose compilation failed (their ids)."""
        ended = []
        for request in [r for r in self.waiting_for_grammar if r.grammar_future.done()]:
            self.waiting_for_grammar.remove(request)
            future, request.grammar_future = request.grammar_future, None
            error = future.exception()
            if error is not None:
                logger.warning("request %s: grammar compilation failed: %s", request.request_id, error)
                for seq in request.sequences:
                    seq.output.finish_reason = "error"
                    self.finish(seq)
                ended.append(request.request_id)
                continue
            self.grammars.attach(future.result(), request.sequences)
            for seq in request.sequences:
                self.add(seq)
        return ended

    # --- ending and undoing -------------------------------------------------------------------
    def finish(self, seq: Sequence) -> None:
        """Remove a sequence that ended (stopped, hit its length, failed or was aborted) and free its
        blocks; its status follows its finish reason."""
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
        elif seq.status is SequenceStatus.WAITING and seq in self.waiting:
            self.waiting.remove(seq)
        elif seq.status is SequenceStatus.WAITING_FOR_GRAMMAR:
            self.waiting_for_grammar = [r for r in self.waiting_for_grammar if r.request_id != seq.request_id]
        elif seq.status is SequenceStatus.WAITING_FOR_REMOTE_KV:
            self.waiting_for_remote_kv.remove(seq)
        if not seq.keep_blocks:
            self._release(seq)
        seq.status = SequenceStatus.finished(seq.output.finish_reason)

    def abort_request(self, request_id: str) -> bool:
        """Stop a request now and free its blocks; False if it is unknown or already reported finished."""
        request = self.requests.pop(request_id, None)
        if request is None:
            return False
        for seq in request.sequences:
            if not seq.is_finished:
                seq.output.finish_reason = "abort"
                self.finish(seq)
        return True

    def release_kept_blocks(self, seq: Sequence) -> None:
        """Free the blocks a finished sequence kept for a KV transfer (see Sequence.keep_blocks)."""
        seq.keep_blocks = False
        self.block_manager.free(seq)

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
        if self.speculator is not None:
            self.speculator.release(seq)
        self.block_manager.free(seq)

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self._release(seq)
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)
