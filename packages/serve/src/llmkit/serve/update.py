"""The update stage of a step, `Scheduler.update_from_output`: a `RunnerOutput` applied to the
sequences a `SchedulerOutput` ran. Computed tokens advance and their blocks enter the prefix cache;
new tokens go through the sequence's grammar (jump-forward over forced tokens) and draft accounting,
then into its output stream (stops, detokenization); finished sequences free their blocks, rejected
drafts give theirs back. Then the next step's grammar masks start on the worker thread."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .outputs import RequestOutput, SequenceDelta
from .runner_output import RunnerOutput, SampledTokens
from .scheduler_output import ScheduledSequence, SchedulerOutput
from .sequence import Sequence

if TYPE_CHECKING:
    from .scheduler import Scheduler


def apply_runner_output(scheduler: Scheduler, output: SchedulerOutput, result: RunnerOutput) -> list[RequestOutput]:
    blocks = scheduler.block_manager
    by_id: dict[int, ScheduledSequence] = {}
    for scheduled in output.scheduled:
        seq = scheduled.seq
        by_id[seq.seq_id] = scheduled
        new_prompt_logprobs = result.prompt_logprobs.get(seq.seq_id)
        if new_prompt_logprobs:
            seq.prompt_logprobs.extend(new_prompt_logprobs)
            if seq.prompt_top_logprobs is not None:
                seq.prompt_top_logprobs.extend(result.prompt_top_logprobs[seq.seq_id])
        if not scheduled.draft_token_ids:
            seq.num_computed_tokens += scheduled.num_tokens
            blocks.commit(seq)
    if not result.sampled:
        return []
    now = time.monotonic()
    deltas: dict[str, list[SequenceDelta]] = {}
    for seq_id, sampled in result.sampled.items():
        scheduled = by_id[seq_id]
        seq = scheduled.seq
        tokens = _accepted_tokens(scheduler, scheduled, sampled)
        delta = scheduler.output_processor.append(seq, tokens, sampled, now)
        if seq.output.finished:
            scheduler.finish(seq)
        else:
            blocks.trim(seq, seq.num_tokens)
            blocks.commit(seq)
        deltas.setdefault(seq.request_id, []).append(delta)
    if scheduler.grammars is not None:
        scheduler.grammars.start_masks(scheduler.running)  # overlaps the next step's forward
    return [scheduler.output_processor.report(request_id, d, now) for request_id, d in deltas.items()]


def _accepted_tokens(scheduler: Scheduler, scheduled: ScheduledSequence, sampled: SampledTokens) -> list[int]:
    """The tokens the sequence takes: through its grammar, and with verified drafts accounted for."""
    seq, tokens = scheduled.seq, sampled.token_ids
    if sampled.num_accepted_drafts is None:
        return tokens if seq.grammar is None else _constrained(scheduler, seq, tokens[0])
    if seq.grammar is not None:
        kept = [t for t in tokens if scheduler.grammars.accept(seq, t)]
        if len(kept) < len(tokens):
            seq.output.finish_reason = "stop"  # the grammar cannot go on (a dead end)
        tokens = kept
    if scheduler.speculator is not None:
        scheduler.speculator.record(seq, len(scheduled.draft_token_ids), sampled.num_accepted_drafts)
    seq.num_computed_tokens += 1 + sampled.num_accepted_drafts
    seq.draft_token_ids, seq.draft_probs = [], None
    return tokens


def _constrained(scheduler: Scheduler, seq: Sequence, token: int) -> list[int]:
    """Accept a sampled token into the sequence's grammar, then the tokens it forces (jump-forward)."""
    grammars = scheduler.grammars
    if not grammars.accept(seq, token):
        seq.output.finish_reason = "stop"  # every token was masked: the grammar cannot go on
        return []
    return [token, *grammars.forced_tokens(seq, seq.output.max_new_tokens - len(seq.output.token_ids) - 1)]
