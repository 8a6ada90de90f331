"""BlockManager and Scheduler: prefix-cache rules and invariants under random operation sequences."""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from llmkit.core.sampling import SamplingParams
from llmkit.serve.block_manager import BlockManager, chain_hash
from llmkit.serve.scheduler import Scheduler
from llmkit.serve.sequence import Sequence, SequenceStatus


class FakeTokenizer:
    eos_token_ids = (0,)

    def detokenizer(self, skip_special_tokens=True):
        class Stream:
            def push(self, token_id):
                return "x"

        return Stream()


def make_seq(seq_id, prompt, max_new=8, extra=b""):
    params = SamplingParams(max_tokens=max_new, ignore_eos=True)
    return Sequence(seq_id, f"r{seq_id}", 0, list(prompt), params, seq_id, FakeTokenizer(), max_new, extra)


def compute(manager, seq, count):
    """What the engine does after a forward: the tokens are now in the cache."""
    seq.num_computed_tokens += count
    manager.commit(seq)


def test_chained_hash_depends_on_the_whole_prefix():
    a = chain_hash(b"", [1, 2, 3, 4])
    assert chain_hash(a, [5, 6, 7, 8]) != chain_hash(chain_hash(b"", [9, 2, 3, 4]), [5, 6, 7, 8])
    assert chain_hash(b"", [1, 2, 3, 4], b"adapter-1") != a


def test_full_blocks_are_shared_and_the_last_token_is_computed():
    manager = BlockManager(num_blocks=10, block_size=4)
    first = make_seq(0, range(10))  # 2 full blocks + 2 tokens
    assert manager.admit(first, 10)
    compute(manager, first, 10)
    second = make_seq(1, [*list(range(8)), 99, 98, 97])
    assert manager.cached_prefix_blocks(second) == first.block_table[:2]
    assert manager.admit(second, 3)
    assert second.num_cached_tokens == 8 and second.block_table[:2] == first.block_table[:2]
    assert [manager.blocks[b].ref_count for b in first.block_table[:2]] == [2, 2]
    exact = make_seq(2, range(8))  # a prompt of exactly two full cached blocks: the last token is recomputed
    assert len(manager.cached_prefix_blocks(exact)) == 1


def test_extra_hash_keys_keep_blocks_apart():
    manager = BlockManager(num_blocks=10, block_size=4)
    base = make_seq(0, range(9), extra=b"adapter-a")
    manager.admit(base, 9)
    compute(manager, base, 9)
    assert manager.cached_prefix_blocks(make_seq(1, range(9), extra=b"adapter-b")) == []
    assert len(manager.cached_prefix_blocks(make_seq(2, range(9), extra=b"adapter-a"))) == 2


def test_cached_blocks_are_evicted_lru_and_lose_their_hash():
    manager = BlockManager(num_blocks=4, block_size=4)
    old, new = make_seq(0, range(5)), make_seq(1, range(100, 105))
    for seq in (old, new):
        manager.admit(seq, 5)
        compute(manager, seq, 5)
        manager.free(seq)
    assert len(manager.cached_blocks) == 2 and manager.num_free_blocks == 4
    taker = make_seq(2, range(200, 208))  # needs 2 blocks: the two unhashed tail blocks go first
    manager.admit(taker, 8)
    assert len(manager.cached_blocks) == 2
    taker2 = make_seq(3, range(300, 304))  # one more: the least recently freed cached block is evicted
    manager.admit(taker2, 4)
    assert manager.cached_prefix_blocks(make_seq(4, range(5))) == []
    assert len(manager.cached_prefix_blocks(make_seq(5, range(100, 105)))) == 1
    evicted = taker2.block_table[0]
    assert manager.blocks[evicted].hash is None and evicted not in manager.cached_blocks.values()


def test_reset_prefix_cache_forgets_everything():
    manager = BlockManager(num_blocks=4, block_size=4)
    seq = make_seq(0, range(9))
    manager.admit(seq, 9)
    compute(manager, seq, 9)
    manager.reset_prefix_cache()
    assert manager.cached_prefix_blocks(make_seq(1, range(9))) == []


def test_scheduler_chunks_long_prompts_and_mixes_decodes():
    manager = BlockManager(num_blocks=64, block_size=4)
    scheduler = Scheduler(manager, max_num_seqs=8, max_num_batched_tokens=10)
    short, long = make_seq(0, range(3)), make_seq(1, range(100, 125))
    scheduler.add(short)
    scheduler.add(long)
    batch = scheduler.schedule()
    assert [(s.seq_id, n) for s, n in batch.sequences] == [(0, 3), (1, 4)]  # the chunk ends on a block boundary
    for seq, n in batch.sequences:
        compute(manager, seq, n)
    short.output.append(5)  # the short prompt sampled a token
    batch = scheduler.schedule()
    assert [(s.seq_id, n) for s, n in batch.sequences] == [(0, 1), (1, 8)]


def test_a_chunk_cut_by_the_budget_ends_on_a_block_boundary_when_the_budget_reaches_one():
    """So a quantized cache never re-quantizes half a block depending on what else is in the batch."""
    manager = BlockManager(num_blocks=64, block_size=4)
    scheduler = Scheduler(manager, max_num_seqs=8, max_num_batched_tokens=6)
    a, b = make_seq(0, range(5)), make_seq(1, range(100, 125))
    scheduler.add(a)
    scheduler.add(b)
    batch = scheduler.schedule()  # one token of budget left for b: no boundary within reach, take it
    assert [(s.seq_id, n) for s, n in batch.sequences] == [(0, 5), (1, 1)]
    for seq, n in batch.sequences:
        compute(manager, seq, n)
    a.output.append(5)
    batch = scheduler.schedule()  # b resumes at 1: 5 tokens left reach the boundary at 4
    assert [(s.seq_id, n) for s, n in batch.sequences] == [(0, 1), (1, 3)]
    for seq, n in batch.sequences:
        compute(manager, seq, n)
    a.output.append(6)
    batch = scheduler.schedule()
    assert [(s.seq_id, n) for s, n in batch.sequences] == [(0, 1), (1, 4)]


def test_scheduler_preempts_the_newest_when_blocks_run_out():
    manager = BlockManager(num_blocks=4, block_size=4)
    scheduler = Scheduler(manager, max_num_seqs=8, max_num_batched_tokens=100)
    a, b = make_seq(0, range(8)), make_seq(1, range(50, 58))
    scheduler.add(a)
    scheduler.add(b)
    for seq, n in scheduler.schedule().sequences:
        compute(manager, seq, n)
    a.output.append(1)
    b.output.append(1)
    batch = scheduler.schedule()  # a needs a third block: b is preempted
    assert batch.preempted == [b] and b.status is SequenceStatus.WAITING and b.block_table == []
    assert [s for s, _ in batch.sequences] == [a] and scheduler.waiting[0] is b


class EngineStateMachine(RuleBasedStateMachine):
    """Random add / step / abort / preempt-pressure sequences against the block invariants."""

    def __init__(self):
        super().__init__()
        self.rng = random.Random(0)
        self.manager = BlockManager(num_blocks=12, block_size=4)
        self.scheduler = Scheduler(self.manager, max_num_seqs=5, max_num_batched_tokens=12)
        self.sequences: list[Sequence] = []
        self.next_id = 0

    @rule(length=st.integers(1, 20), shared=st.booleans(), max_new=st.integers(1, 8))
    def add(self, length, shared, max_new):
        prompt = list(range(length)) if shared else [self.rng.randrange(1000) for _ in range(length)]
        seq = make_seq(self.next_id, prompt, max_new=min(max_new, 48 - length))
        self.next_id += 1
        self.sequences.append(seq)
        self.scheduler.add(seq)

    @rule()
    def step(self):
        batch = self.scheduler.schedule()
        for seq, n in batch.sequences:
            compute(self.manager, seq, n)
            if seq.num_computed_tokens == seq.num_tokens:
                seq.output.append(self.rng.randrange(1, 1000))
                if seq.output.finished:
                    self.scheduler.finish(seq)

    @precondition(lambda self: any(not s.is_finished for s in self.sequences))
    @rule(pick=st.integers(0, 1000))
    def abort(self, pick):
        alive = [s for s in self.sequences if not s.is_finished]
        self.scheduler.finish(alive[pick % len(alive)])

    @rule()
    def drain(self):
        for _ in range(200):
            if not self.scheduler.has_unfinished():
                break
            self.step()
        assert not self.scheduler.has_unfinished(), "the scheduler stalled"
        assert self.manager.num_free_blocks == self.manager.num_blocks, "a block leaked"

    @invariant()
    def blocks_are_free_xor_used(self):
        holders: dict[int, int] = {}
        for seq in self.sequences:
            for block_id in seq.block_table:
                holders[block_id] = holders.get(block_id, 0) + 1
        for block in self.manager.blocks:
            assert block.ref_count == holders.get(block.block_id, 0)
            assert (block.block_id in self.manager.free_queue) == (block.ref_count == 0)
        for block_hash, block_id in self.manager.cached_blocks.items():
            assert self.manager.blocks[block_id].hash == block_hash

    @invariant()
    def finished_sequences_hold_nothing(self):
        assert all(not s.block_table for s in self.sequences if s.is_finished or s.status is SequenceStatus.WAITING)


EngineStateMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestEngineStateMachine = EngineStateMachine.TestCase
