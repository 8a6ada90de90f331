"""The runner's sampling stage: logits -> new tokens. Grammar masks on constrained rows, thinking budgets
(the closing tag forced once a thinking section has spent its tokens), penalties and the sampler for plain decoding, rejection-sampling verification for sequences with drafts, and the
logprobs each request asked for. It reads sequences (params, seeds, outputs, grammars) and changes none."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from llmkit.core import ops
from llmkit.core.sampling import SamplingBatch, argmax_rows, force_thinking_budgets, plain_argmax, sample

from .runner_output import SampledTokens
from .scheduler_output import ScheduledSequence
from .speculative.verification import verify

if TYPE_CHECKING:
    from .structured import GrammarManager


def take_rows(tensor: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """`tensor[rows]`: a view when the rows are consecutive (batch 1; a whole batch), else a gathered copy.
    Callers that write into the result write into `tensor` in the first case: only into these rows."""
    if rows and rows == list(range(rows[0], rows[0] + len(rows))):
        return tensor[rows[0] : rows[0] + len(rows)]
    return tensor[torch.tensor(rows, dtype=torch.int64, device=tensor.device)]


class SamplingStage:
    def __init__(self, grammars: GrammarManager | None = None) -> None:
        self.grammars = grammars

    @torch.inference_mode()  # the logits are inference tensors (the runner's), masked in place here
    def run(self, logits: torch.Tensor, needing: list[tuple[ScheduledSequence, list[int]]]) -> dict[int, SampledTokens]:
        """`logits` holds, back to back, the rows each sequence in `needing` asked for (one to sample,
        or one per draft plus one to verify); the new tokens per `seq_id`, in `needing` order."""
        wants = any(s.seq.params.logprobs or s.seq.params.top_logprobs for s, _ in needing)
        raw = logits.log_softmax(-1) if wants else None
        spans, offset = [], 0
        for _, rows in needing:
            spans.append((offset, len(rows)))
            offset += len(rows)
        emitted: dict[int, tuple[list[int], list[int], int | None]] = {}  # index -> tokens, rows, accepted
        plain = [i for i, (s, _) in enumerate(needing) if not s.draft_token_ids]
        drafting = [i for i, (s, _) in enumerate(needing) if s.draft_token_ids]
        if plain:
            rows = [spans[i][0] for i in plain]
            tokens = self._sample(take_rows(logits, rows), [needing[i][0] for i in plain])  # masks its rows in place
            for i, row, token in zip(plain, rows, tokens, strict=True):
                emitted[i] = ([token], [row], None)
        if drafting:
            rows = [r for i in drafting for r in range(spans[i][0], spans[i][0] + spans[i][1])]
            local, offset = [], 0
            for i in drafting:
                local.append((offset, spans[i][1]))
                offset += spans[i][1]
            sequences = [needing[i][0].seq for i in drafting]
            verdicts = verify(self._masked_for_drafts(logits[rows], sequences, local), sequences, local)
            for i, verdict in zip(drafting, verdicts, strict=True):
                emitted[i] = (verdict.tokens, [rows[r] for r in verdict.rows], verdict.accepted_drafts)
        return {
            scheduled.seq.seq_id: self._with_logprobs(scheduled, *emitted[i], raw)
            for i, (scheduled, _) in enumerate(needing)
        }

    def _sample(self, logits: torch.Tensor, scheduled: list[ScheduledSequence]) -> list[int]:
        seqs = [s.seq for s in scheduled]
        params = [s.params for s in seqs]
        if self.grammars is not None:
            self.grammars.apply(logits, seqs)
        force_thinking_budgets(logits, [p.thinking_budget for p in params], [s.output_token_ids for s in seqs])
        if plain_argmax(params):  # most greedy decoding: no per-row tensors to build
            return argmax_rows(logits).tolist()
        batch = SamplingBatch.build(
            params,
            [s.seed for s in seqs],
            [s.output_token_ids for s in seqs],
            [s.prompt_token_ids for s in seqs],
            logits.shape[-1],
            logits.device,
        )
        return sample(logits, batch, with_logprobs=False).token_ids.tolist()

    def _masked_for_drafts(self, logits: torch.Tensor, sequences, spans: list[tuple[int, int]]) -> torch.Tensor:
        """Verification logits with each constrained sequence's rows masked by its grammar along its drafts,
        and the rows where a thinking budget forces the closing tag (given the drafts before them) forced."""
        for seq, (first, count) in zip(sequences, spans, strict=True):
            if seq.params.thinking_budget is not None:
                along = [seq.output_token_ids + seq.draft_token_ids[:j] for j in range(count)]
                force_thinking_budgets(logits[first : first + count], [seq.params.thinking_budget] * count, along)
        constrained = [(seq, span) for seq, span in zip(sequences, spans, strict=True) if seq.grammar is not None]
        if not constrained or self.grammars is None:
            return logits
        bitmask = torch.full((logits.shape[0], self.grammars.words), -1, dtype=torch.int32)
        for seq, (first, count) in constrained:
            bitmask[first : first + count] = self.grammars.draft_masks(seq, count)
        ops.apply_token_bitmask_(logits, bitmask[:, : (logits.shape[-1] + 31) // 32].to(logits.device))
        return logits

    @staticmethod
    def _with_logprobs(
        scheduled: ScheduledSequence, tokens: list[int], rows: list[int], accepted: int | None, raw
    ) -> SampledTokens:
        params = scheduled.seq.params
        if raw is None or not (params.logprobs or params.top_logprobs):
            return SampledTokens(tokens, None, None, accepted)
        logprobs = [float(raw[row, token]) for token, row in zip(tokens, rows, strict=True)]
        tops = None
        if params.top_logprobs:
            tops = []
            for row in rows:
                top = raw[row].topk(params.top_logprobs)
                tops.append(dict(zip(top.indices.tolist(), top.values.tolist(), strict=True)))
        return SampledTokens(tokens, logprobs, tops, accepted)
