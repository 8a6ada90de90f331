"""Each stage of the engine step alone, on hand-made inputs: `Scheduler.schedule()` -> `SchedulerOutput`,
`ModelRunner.execute(SchedulerOutput)` -> `RunnerOutput`, `Scheduler.update_from_output(SchedulerOutput,
RunnerOutput)` -> `RequestOutput`s, and the request statuses the scheduler moves sequences through."""

from __future__ import annotations

import concurrent.futures
import dataclasses

import pytest

from llmkit.core import ops
from llmkit.core.generate import generate
from llmkit.core.sampling import SamplingParams
from llmkit.serve import RunnerOutput, SampledTokens, ScheduledSequence, SchedulerOutput, SequenceStatus
from llmkit.serve.block_manager import BlockManager
from llmkit.serve.model_runner import ModelRunner
from llmkit.serve.outputs import RequestTiming
from llmkit.serve.request import Request
from llmkit.serve.scheduler import Scheduler
from llmkit.serve.sequence import Sequence

BLOCK = 4


class FakeTokenizer:
    eos_token_ids = (0,)

    def detokenizer(self, skip_special_tokens=True):
        class Stream:
            def push(self, token_id):
                return f"<{token_id}>"

        return Stream()


def make_request(scheduler: Scheduler, request_id: str, prompt, max_new=8, future=None, tokenizer=None) -> Sequence:
    params = SamplingParams(max_tokens=max_new, temperature=0)
    seq = Sequence(
        len(scheduler.requests), request_id, 0, list(prompt), params, 0, tokenizer or FakeTokenizer(), max_new
    )
    scheduler.add_request(Request(request_id, list(prompt), [seq], RequestTiming(0.0), grammar_future=future))
    return seq


def new_scheduler(num_blocks=16, budget=64) -> Scheduler:
    return Scheduler(BlockManager(num_blocks, BLOCK), max_num_seqs=8, max_num_batched_tokens=budget)


# --- schedule() ------------------------------------------------------------------------------------
def test_schedule_describes_the_step_in_a_frozen_output():
    scheduler = new_scheduler(budget=10)
    short, long = make_request(scheduler, "a", [5, 6, 7]), make_request(scheduler, "b", range(10, 22))
    output = scheduler.schedule()
    first, second = output.scheduled
    assert (first.seq, first.num_tokens, first.token_ids, first.num_computed_tokens) == (short, 3, (5, 6, 7), 0)
    assert first.samples and not first.is_decode and first.block_table == tuple(short.block_table)
    # the budget leaves 7 tokens: the chunk ends on the block boundary it reaches (4)
    assert (second.num_tokens, second.token_ids, second.samples) == (4, tuple(range(10, 14)), False)
    assert list(second.positions) == list(range(4)) and len(second.block_table) == 1
    assert output.request_ids == ["a", "b"] and output.num_tokens == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        output.scheduled = ()
    assert short.status is long.status is SequenceStatus.RUNNING


def test_schedule_cuts_drafts_to_the_token_budget():
    scheduler = new_scheduler()
    seq = make_request(scheduler, "a", [5, 6, 7, 8])
    scheduler.update_from_output(scheduler.schedule(), RunnerOutput({seq.seq_id: SampledTokens([9])}))
    scheduler.max_num_batched_tokens = 3
    seq.draft_token_ids = [1, 2, 3, 4]
    (scheduled,) = scheduler.schedule().scheduled
    assert scheduled.num_tokens == 3 and scheduled.draft_token_ids == (1, 2) and scheduled.token_ids == (9, 1, 2)
    assert scheduled.samples and not scheduled.is_decode and seq.draft_token_ids == [1, 2]


# --- update_from_output() ----------------------------------------------------------------------------
def test_update_appends_tokens_reports_and_frees_a_finished_sequence():
    scheduler = new_scheduler()
    seq = make_request(scheduler, "a", [5, 6, 7], max_new=2)
    output = scheduler.schedule()
    [report] = scheduler.update_from_output(output, RunnerOutput({seq.seq_id: SampledTokens([42])}))
    assert seq.num_computed_tokens == 3 and seq.output_token_ids == [42]
    assert report.request_id == "a" and not report.finished and report.deltas[0].token_ids == [42]
    assert report.deltas[0].text == "<42>"
    output = scheduler.schedule()
    assert output.scheduled[0].is_decode and output.scheduled[0].token_ids == (42,)
    [report] = scheduler.update_from_output(output, RunnerOutput({seq.seq_id: SampledTokens([43])}))
    assert report.finished and report.deltas[0].finish_reason == "length"
    assert seq.status is SequenceStatus.FINISHED_LENGTH and seq.block_table == []
    assert scheduler.block_manager.num_free_blocks == 16 and "a" not in scheduler.requests


def test_update_of_a_prefill_chunk_only_advances_the_computed_tokens():
    scheduler = new_scheduler(budget=4)
    seq = make_request(scheduler, "a", range(10, 20))
    assert scheduler.update_from_output(scheduler.schedule(), RunnerOutput()) == []
    assert seq.num_computed_tokens == 4 and seq.output_token_ids == [] and seq.status is SequenceStatus.RUNNING


def test_update_stops_on_a_stop_token_and_drops_what_follows():
    scheduler = new_scheduler()
    seq = make_request(scheduler, "a", [5, 6, 7])
    seq.draft_token_ids = []
    output = scheduler.schedule()
    [report] = scheduler.update_from_output(output, RunnerOutput({seq.seq_id: SampledTokens([0])}))
    assert (
        report.finished and seq.status is SequenceStatus.FINISHED_STOPPED and report.deltas[0].finish_reason == "stop"
    )


def test_update_accounts_verified_drafts_with_a_hand_made_runner_output():
    scheduler = new_scheduler()
    seq = make_request(scheduler, "a", [5, 6, 7])
    scheduler.update_from_output(scheduler.schedule(), RunnerOutput({seq.seq_id: SampledTokens([9])}))
    seq.draft_token_ids = [1, 2, 3]
    output = SchedulerOutput((ScheduledSequence.of(seq, 4),))
    assert scheduler.block_manager.allocate_for(seq, 4)
    result = RunnerOutput({seq.seq_id: SampledTokens([1, 2, 8], num_accepted_drafts=2)})
    [report] = scheduler.update_from_output(output, result)
    assert report.deltas[0].token_ids == [1, 2, 8] and seq.output_token_ids == [9, 1, 2, 8]
    assert seq.num_computed_tokens == 6 == seq.num_tokens - 1 and seq.draft_token_ids == []
    assert len(seq.block_table) == 2  # the rejected draft's slot was given back (7 tokens, blocks of 4)


def test_update_reports_logprobs_of_the_kept_tokens():
    scheduler = new_scheduler()
    params = SamplingParams(max_tokens=8, temperature=0, logprobs=True)
    seq = Sequence(0, "a", 0, [5, 6], params, 0, FakeTokenizer(), 8)
    scheduler.add_request(Request("a", [5, 6], [seq], RequestTiming(0.0)))
    [report] = scheduler.update_from_output(
        scheduler.schedule(), RunnerOutput({0: SampledTokens([4], logprobs=[-0.25])})
    )
    assert report.deltas[0].logprobs == [-0.25] and seq.logprobs == [-0.25]


# --- execute() -----------------------------------------------------------------------------------
def test_execute_samples_the_reference_token_and_changes_no_sequence(tiny):
    config = tiny.config
    caches = [
        ops.allocate(16, config.num_kv_heads, BLOCK, config.head_dim, "auto", tiny.model.dtype, tiny.model.device)
        for _ in range(config.num_layers)
    ]
    runner = ModelRunner(tiny.model, caches, BLOCK)
    prompt = [11, 12, 13, 14, 15, 16]
    params = SamplingParams(max_tokens=2, temperature=0, ignore_eos=True)
    expected = generate(tiny.model, tiny.tokenizer, [prompt], params)[0].completions[0].token_ids
    seq = Sequence(0, "a", 0, prompt, params, 0, tiny.tokenizer, 2)
    seq.block_table = [3, 7]  # any blocks: the output carries the table
    result = runner.execute(SchedulerOutput((ScheduledSequence.of(seq, 6),)))
    assert result.sampled[0].token_ids == [expected[0]] and result.sampled[0].num_accepted_drafts is None
    assert seq.num_computed_tokens == 0 and seq.output_token_ids == []
    seq.output.append(expected[0])
    seq.num_computed_tokens = 6
    decode = ScheduledSequence.of(seq, 1)
    assert decode.is_decode
    assert runner.execute(SchedulerOutput((decode,))).sampled[0].token_ids == [expected[1]]


def test_execute_of_a_mid_prefill_chunk_samples_nothing(tiny):
    config = tiny.config
    caches = [
        ops.allocate(4, config.num_kv_heads, BLOCK, config.head_dim, "auto", tiny.model.dtype, tiny.model.device)
        for _ in range(config.num_layers)
    ]
    seq = Sequence(0, "a", 0, list(range(20, 30)), SamplingParams(max_tokens=2), 0, tiny.tokenizer, 2)
    seq.block_table = [0, 1]
    result = ModelRunner(tiny.model, caches, BLOCK).execute(SchedulerOutput((ScheduledSequence.of(seq, 8),)))
    assert result == RunnerOutput()


# --- statuses ------------------------------------------------------------------------------------
class StubGrammars:
    def __init__(self):
        self.attached = []

    def attach(self, grammar, sequences):
        self.attached.append((grammar, sequences))


def test_a_request_waits_for_its_grammar_then_runs():
    scheduler = new_scheduler()
    scheduler.grammars = StubGrammars()
    future: concurrent.futures.Future = concurrent.futures.Future()
    seq = make_request(scheduler, "a", [5, 6, 7], future=future)
    assert seq.status is SequenceStatus.WAITING_FOR_GRAMMAR and scheduler.has_unfinished()
    assert scheduler.schedule().is_empty
    future.set_result("compiled")
    output = scheduler.schedule()
    assert [s.seq for s in output.scheduled] == [seq] and seq.status is SequenceStatus.RUNNING
    assert scheduler.grammars.attached == [("compiled", [seq])]


def test_a_grammar_that_fails_to_compile_ends_its_request_with_an_error():
    scheduler = new_scheduler()
    future: concurrent.futures.Future = concurrent.futures.Future()
    seq = make_request(scheduler, "a", [5, 6, 7], future=future)
    future.set_exception(ValueError("bad grammar"))
    output = scheduler.schedule()
    assert output.is_empty and output.ended_request_ids == ("a",)
    assert seq.status is SequenceStatus.FINISHED_ERROR
    [report] = scheduler.update_from_output(output, RunnerOutput())
    assert report.finished and report.deltas[0].finish_reason == "error" and not scheduler.has_unfinished()


def test_remote_kv_reserves_blocks_then_runs_from_the_last_prompt_token():
    scheduler = new_scheduler()
    seq = make_request(scheduler, "a", range(10, 19))
    assert scheduler.reserve_remote_kv(seq)
    assert seq.status is SequenceStatus.WAITING_FOR_REMOTE_KV and len(seq.block_table) == 3
    assert scheduler.schedule().is_empty and not scheduler.has_unfinished()
    scheduler.remote_kv_arrived(seq)
    (scheduled,) = scheduler.schedule().scheduled
    assert seq.status is SequenceStatus.RUNNING and scheduled.is_decode and scheduled.token_ids == (18,)


def test_abort_from_any_waiting_status_frees_everything():
    scheduler = new_scheduler()
    remote = make_request(scheduler, "remote", range(10, 19))
    scheduler.reserve_remote_kv(remote)
    compiling = make_request(scheduler, "grammar", [1, 2], future=concurrent.futures.Future())
    queued = make_request(scheduler, "queued", [3, 4])
    for request_id in ("remote", "grammar", "queued"):
        assert scheduler.abort_request(request_id)
    assert {s.status for s in (remote, compiling, queued)} == {SequenceStatus.FINISHED_ABORTED}
    assert not scheduler.has_unfinished() and scheduler.block_manager.num_free_blocks == 16
    assert not scheduler.waiting_for_remote_kv and not scheduler.waiting_for_grammar


def test_preemption_sends_a_sequence_back_to_waiting():
    scheduler = new_scheduler(num_blocks=4)
    a, b = make_request(scheduler, "a", range(8)), make_request(scheduler, "b", range(50, 58))
    output = scheduler.schedule()
    scheduler.update_from_output(output, RunnerOutput({a.seq_id: SampledTokens([1]), b.seq_id: SampledTokens([1])}))
    output = scheduler.schedule()
    assert output.preempted == [b] and b.status is SequenceStatus.WAITING and b.num_preemptions == 1
