"""`ModelRunner`: turns a `SchedulerOutput` into one forward pass over the paged KV cache, then new tokens.

Token order in the flat batch: decoding sequences (one token each) first, then prefill
chunks back to back. The forward is `llmkit.core.ops.paged_forward`: with the native kernels
installed, one fused native call per step (see csrc/model/llama_forward.h); otherwise the
model's torch forward with paged attention through core's ops.
"""

from __future__ import annotations

import dataclasses

import torch

from llmkit.core import ops
from llmkit.core.models.llama import LlamaModel
from llmkit.core.ops import PagedKVCache, PagedStep

from .runner_output import RunnerOutput
from .sampling_stage import SamplingStage, take_rows
from .scheduler_output import ScheduledSequence, SchedulerOutput
from .sequence import Sequence
from .structured import GrammarManager
from .vision import EngineVision, ImageRows


@dataclasses.dataclass
class StepInputs(PagedStep):
    """A `PagedStep` plus where each sequence's rows are in the flat batch."""

    first_rows: list[int]  # each sequence's first row in the flat batch
    logit_rows: list[list[int]]  # rows whose logits each sequence needs: [] mid-prefill, [last] to sample,
    # or the rows of the last token and its drafts to verify them
    images: ImageRows | None = None  # rows whose input is an image embedding (vision-language models)


def _block_tables(tables: list[tuple[int, ...]], device: torch.device) -> torch.Tensor:
    """[len(tables), widest] int32, rows padded with block 0 (past each sequence's length, never read)."""
    width = max(1, max((len(t) for t in tables), default=0))
    padded = [blocks if len(blocks) == width else (*blocks, *(0,) * (width - len(blocks))) for blocks in tables]
    return torch.tensor(padded, dtype=torch.int32, device=device).reshape(len(tables), width)


class ModelRunner:
    """`execute(SchedulerOutput) -> RunnerOutput`: the forward, then the sampling stage (grammar masks,
    sampler, speculative verification). It reads the sequences and changes none of them."""

    def __init__(
        self,
        model: LlamaModel,
        caches: list[PagedKVCache],
        block_size: int,
        grammars: GrammarManager | None = None,
        vision: EngineVision | None = None,
    ):
        self.model, self.caches, self.block_size = model, caches, block_size
        self.vision = vision
        self.device = model.device
        self.sampling = SamplingStage(grammars)

    def slot(self, block_table, position: int) -> int:
        return block_table[position // self.block_size] * self.block_size + position % self.block_size

    def execute(self, output: SchedulerOutput) -> RunnerOutput:
        """One forward over the step's tokens; prompt logprobs, then new tokens for every sequence that samples."""
        inputs, ordered = self.prepare(output)
        hidden = self.forward(inputs)
        prompt_logprobs, prompt_top_logprobs = {}, {}
        for scheduled, first_row in zip(ordered, inputs.first_rows, strict=True):
            seq = scheduled.seq
            if seq.prompt_logprobs is not None:
                logprobs, tops = self._prompt_logprobs(scheduled, hidden, first_row)
                prompt_logprobs[seq.seq_id] = logprobs
                if seq.prompt_top_logprobs is not None:
                    prompt_top_logprobs[seq.seq_id] = tops
        needing = [(s, rows) for s, rows in zip(ordered, inputs.logit_rows, strict=True) if rows]
        if not needing:
            return RunnerOutput({}, prompt_logprobs, prompt_top_logprobs)
        logits = self.logits(hidden, [row for _, rows in needing for row in rows])
        return RunnerOutput(self.sampling.run(logits, needing), prompt_logprobs, prompt_top_logprobs)

    def prepare(self, output: SchedulerOutput) -> tuple[StepInputs, list[ScheduledSequence]]:
        """Order the step (decodes first) and build its tensors."""
        decodes = [s for s in output.scheduled if s.is_decode]
        prefills = [s for s in output.scheduled if not s.is_decode]
        ordered = decodes + prefills
        ids, positions, slots, first_rows, logit_rows = [], [], [], [], []
        for scheduled in ordered:
            first_rows.append(len(ids))
            ids.extend(scheduled.token_ids)
            table = scheduled.block_table
            for position in scheduled.positions:
                positions.append(position)
                slots.append(self.slot(table, position))
            end = len(ids) - 1
            drafts = len(scheduled.draft_token_ids)
            logit_rows.append(list(range(end - drafts, end + 1)) if scheduled.samples else [])
        starts = [0]
        for scheduled in prefills:
            starts.append(starts[-1] + scheduled.num_tokens)
        images = None
        if self.vision is not None:  # positions of image tokens take image embeddings
            chunks = zip(ordered, first_rows, strict=True)
            images = self.vision.step_rows([(s.images, row, s.num_computed_tokens, s.num_tokens) for s, row in chunks])

        def tensor(values, dtype=torch.int64):
            return torch.tensor(values, dtype=dtype, device=self.device)

        inputs = StepInputs(
            input_ids=tensor(ids),
            positions=tensor(positions),
            slot_mapping=tensor(slots),
            num_decode=len(decodes),
            decode_block_tables=_block_tables([s.block_table for s in decodes], self.device),
            decode_seq_lens=tensor([s.num_computed_tokens + 1 for s in decodes], torch.int32),
            prefill_block_tables=_block_tables([s.block_table for s in prefills], self.device),
            prefill_seq_lens=tensor([s.num_computed_tokens + s.num_tokens for s in prefills], torch.int32),
            query_start_loc=tensor(starts, torch.int32),
            first_rows=first_rows,
            logit_rows=logit_rows,
            images=images,
        )
        return inputs, ordered

    @torch.inference_mode()
    def forward(self, inputs: StepInputs) -> torch.Tensor:
        """Final hidden states [N, hidden] of every token in the step."""
        return ops.paged_forward(self.model, self.caches, inputs, None, inputs.images)

    def _prompt_logprobs(
        self, scheduled: ScheduledSequence, hidden: torch.Tensor, first_row: int
    ) -> tuple[list[float], list[dict[int, float]]]:
        """Logprobs of the prompt tokens this chunk predicts that are not known yet (row of position p
        predicts the token at p + 1; a recomputed prefix after preemption adds nothing twice), and the
        request's `top_logprobs` most likely tokens at each of those positions (none when it asks for none)."""
        seq, start = scheduled.seq, scheduled.num_computed_tokens
        prompt = seq.prompt_token_ids
        first = max(start + 1, len(seq.prompt_logprobs))  # first prompt position still without a logprob
        last = min(start + scheduled.num_tokens, len(prompt) - 1)  # last prompt position this chunk predicts
        if first > last:
            return [], []
        rows = [first_row + position - 1 - start for position in range(first, last + 1)]
        logprobs = self.logits(hidden, rows).log_softmax(-1)
        targets = torch.tensor(prompt[first : last + 1], device=logprobs.device)
        chosen = logprobs.gather(1, targets[:, None]).squeeze(1).tolist()
        if not seq.params.top_logprobs:
            return chosen, []
        top = logprobs.topk(seq.params.top_logprobs, dim=-1)
        tops = [dict(zip(i, v, strict=True)) for i, v in zip(top.indices.tolist(), top.values.tolist(), strict=True)]
        return chosen, tops

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """float32 logits [len(rows), V] of the given rows."""
        return self.model.compute_logits(take_rows(hidden, rows))

    @torch.inference_mode()
    def decode_logits(
        self, sequences: list[Sequence], tokens: list[int], positions: list[int], num_layers: int | None = None
    ) -> torch.Tensor:
        """One token per sequence at `positions` (its slot already allocated), through the first
        `num_layers` layers; float32 logits [B, V]."""

        def tensor(values, dtype=torch.int64):
            return torch.tensor(values, dtype=dtype, device=self.device)

        inputs = StepInputs(
            input_ids=tensor(tokens),
            positions=tensor(positions),
            slot_mapping=tensor([self.slot(s.block_table, p) for s, p in zip(sequences, positions, strict=True)]),
            num_decode=len(sequences),
            decode_block_tables=_block_tables([tuple(s.block_table) for s in sequences], self.device),
            decode_seq_lens=tensor([p + 1 for p in positions], torch.int32),
            prefill_block_tables=_block_tables([], self.device),
            prefill_seq_lens=tensor([], torch.int32),
            query_start_loc=tensor([0], torch.int32),
            first_rows=list(range(len(sequences))),
            logit_rows=[[i] for i in range(len(sequences))],
        )
        return self.model.compute_logits(ops.paged_forward(self.model, self.caches, inputs, num_layers))
