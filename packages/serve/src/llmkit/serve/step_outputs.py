"""Turn one forward's hidden states into tokens: prompt logprobs, sampling, draft verification,
appending to each sequence's output, and the per-request report."""

from __future__ import annotations

import time

import torch

from llmkit.core import ops
from llmkit.core.sampling import SamplingBatch, sample

from .model_runner import StepInputs
from .outputs import RequestOutput, SequenceDelta
from .sequence import Sequence
from .speculative.verification import verify


class StepOutputs:
    def __init__(self, engine) -> None:
        self.engine = engine
        # False once a step has started to hand tokens to sequences (grammar state, outputs): a step
        # that fails after that point cannot be recomputed as if it never ran (see failure_isolation).
        # The engine sets it True as each step begins.
        self.replayable = True

    def process(
        self, counts: dict[int, int], inputs: StepInputs, ordered: list[Sequence], hidden: torch.Tensor
    ) -> list[RequestOutput]:
        engine = self.engine
        for seq, first_row in zip(ordered, inputs.first_rows, strict=True):
            if seq.prompt_logprobs is not None:
                self._record_prompt_logprobs(seq, hidden, first_row, counts[id(seq)])
            if not seq.draft_token_ids:
                seq.num_computed_tokens += counts[id(seq)]
                engine.block_manager.commit(seq)
        needing = [(seq, rows) for seq, rows in zip(ordered, inputs.logit_rows, strict=True) if rows]
        if not needing:
            return []
        logits = engine.runner.logits(hidden, [row for _, rows in needing for row in rows])
        raw = logits.log_softmax(-1) if any(s.params.logprobs or s.params.top_logprobs for s, _ in needing) else None
        spans, offset = [], 0
        for _, rows in needing:
            spans.append((offset, len(rows)))
            offset += len(rows)
        plain = [(i, seq) for i, (seq, _) in enumerate(needing) if not seq.draft_token_ids]
        drafting = [(i, seq) for i, (seq, _) in enumerate(needing) if seq.draft_token_ids]
        emitted: dict[int, tuple[list[int], list[int]]] = {}  # needing index -> (tokens, logit rows)
        if plain:
            rows = [spans[i][0] for i, _ in plain]
            seqs = [seq for _, seq in plain]
            batch = SamplingBatch.build(
                [s.params for s in seqs],
                [s.seed for s in seqs],
                [s.output_token_ids for s in seqs],
                [s.prompt_token_ids for s in seqs],
                logits.shape[-1],
                logits.device,
            )
            chosen = logits[rows]
            engine.structured.apply(chosen, seqs)
            tokens = sample(chosen, batch, with_logprobs=False).token_ids.tolist()
            self.replayable = False
            for (i, seq), row, token in zip(plain, rows, tokens, strict=True):
                emitted[i] = self._constrained(seq, token, row) if seq.grammar is not None else ([token], [row])
        if drafting:
            global_rows = [r for i, _ in drafting for r in range(spans[i][0], spans[i][0] + spans[i][1])]
            local_spans, offset = [], 0
            for i, _ in drafting:
                local_spans.append((offset, spans[i][1]))
                offset += spans[i][1]
            verdicts = verify(
                self._masked_for_drafts(logits[global_rows], drafting, local_spans),
                [seq for _, seq in drafting],
                local_spans,
            )
            self.replayable = False
            for (i, seq), verdict in zip(drafting, verdicts, strict=True):
                if seq.grammar is not None:
                    kept = [t for t in verdict.tokens if engine.structured.accept(seq, t)]
                    if len(kept) < len(verdict.tokens):
                        seq.output.finish_reason = "stop"  # the grammar cannot go on (a dead end)
                    verdict.tokens = kept
                emitted[i] = (verdict.tokens, [global_rows[r] for r in verdict.rows[: len(verdict.tokens)]])
                engine.speculator.record(seq, len(seq.draft_token_ids), verdict.accepted_drafts)
                seq.num_computed_tokens += 1 + verdict.accepted_drafts
                seq.draft_token_ids, seq.draft_probs = [], None
        self.replayable = False
        now = time.monotonic()
        deltas: dict[str, list[SequenceDelta]] = {}
        for i, (seq, _) in enumerate(needing):
            tokens, rows = emitted[i]
            delta = self._append(seq, tokens, rows, raw, now)
            if not seq.is_finished:
                engine.block_manager.trim(seq, seq.num_tokens)
                engine.block_manager.commit(seq)
            deltas.setdefault(seq.request_id, []).append(delta)
        engine.structured.start_masks(engine.scheduler.running)  # overlaps the next step's forward
        return [self._report(request_id, seq_deltas, now) for request_id, seq_deltas in deltas.items()]

    def _constrained(self, seq: Sequence, token: int, row: int) -> tuple[list[int], list[int]]:
        """Accept a sampled token into the sequence's grammar, then the tokens it forces (jump-forward)."""
        structured = self.engine.structured
        if not structured.accept(seq, token):
            seq.output.finish_reason = "stop"  # every token was masked: the grammar cannot go on
            return [], []
        forced = structured.forced_tokens(seq, seq.output.max_new_tokens - len(seq.output.token_ids) - 1)
        return [token, *forced], [row] * (1 + len(forced))

    def _masked_for_drafts(
        self, logits: torch.Tensor, drafting: list[tuple[int, Sequence]], spans: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Verification logits with each constrained sequence's rows masked by its grammar along its drafts."""
        constrained = [(seq, span) for (_, seq), span in zip(drafting, spans, strict=True) if seq.grammar is not None]
        if not constrained:
            return logits
        bitmask = torch.full((logits.shape[0], self.engine.structured.words), -1, dtype=torch.int32)
        for seq, (first, count) in constrained:
            bitmask[first : first + count] = self.engine.structured.draft_masks(seq, count)
        ops.apply_token_bitmask_(logits, bitmask[:, : (logits.shape[-1] + 31) // 32].to(logits.device))
        return logits

    def report_failure(self, request_id: str) -> RequestOutput:
        """The final report of a request that ended without running (see Engine.fail_request)."""
        request = self.engine.requests[request_id]
        deltas = [SequenceDelta(s.index, [], "", s.output.finish_reason) for s in request.sequences]
        return self._report(request_id, deltas, time.monotonic())

    def _record_prompt_logprobs(self, seq: Sequence, hidden: torch.Tensor, first_row: int, count: int) -> None:
        """Logprobs of the prompt tokens this chunk predicts that are not known yet (row of position p
        predicts the token at p + 1; a recomputed prefix after preemption adds nothing twice)."""
        start, prompt = seq.num_computed_tokens, seq.prompt_token_ids
        first = max(start + 1, len(seq.prompt_logprobs))  # first prompt position still without a logprob
        last = min(start + count, len(prompt) - 1)  # last prompt position this chunk predicts
        if first > last:
            return
        rows = [first_row + position - 1 - start for position in range(first, last + 1)]
        logprobs = self.engine.runner.logits(hidden, rows).log_softmax(-1)
        targets = torch.tensor(prompt[first : last + 1], device=logprobs.device)
        seq.prompt_logprobs.extend(logprobs.gather(1, targets[:, None]).squeeze(1).tolist())

    def _append(
        self, seq: Sequence, tokens: list[int], rows: list[int], raw: torch.Tensor | None, now: float
    ) -> SequenceDelta:
        """Append tokens until the sequence finishes; what follows a stop is dropped."""
        text, kept, logprobs, tops = "", [], [], []
        wants = seq.params.logprobs or seq.params.top_logprobs
        for token, row in zip(tokens, rows, strict=True):
            text += seq.output.append(token)
            kept.append(token)
            if wants and raw is not None:
                logprobs.append(float(raw[row, token]))
                if seq.params.top_logprobs:
                    top = raw[row].topk(seq.params.top_logprobs)
                    tops.append(dict(zip(top.indices.tolist(), top.values.tolist(), strict=True)))
            if seq.output.finished:
                break
        seq.logprobs.extend(logprobs)
        seq.top_logprobs.extend(tops)
        seq.first_token_time = seq.first_token_time or now
        seq.last_token_time = now
        if seq.output.finished:
            self.engine.scheduler.finish(seq)
        return SequenceDelta(
            seq.index,
            kept,
            text,
            seq.output.finish_reason,
            logprobs if wants else None,
            tops if seq.params.top_logprobs else None,
        )

    def _report(self, request_id: str, deltas: list[SequenceDelta], now: float) -> RequestOutput:
        request = self.engine.requests[request_id]
        timing = request.timing
        timing.first_token = timing.first_token or now
        timing.num_output_tokens += sum(len(d.token_ids) for d in deltas)
        finished = request.finished
        if finished:
            timing.finished = now
            del self.engine.requests[request_id]
        cached = request.sequences[0].num_cached_tokens
        return RequestOutput(request_id, request.prompt_token_ids, deltas, finished, cached, timing)
