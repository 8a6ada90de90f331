"""`ModelRunner`: turns a scheduled batch into one forward pass over the paged KV cache.

Token order in the flat batch: decoding sequences (one token each) first, then prefill
chunks back to back. Attention calls `llmkit.core.ops` (native kernels when installed,
references otherwise): write new K/V into their slots, then decode/prefill attention.
"""

from __future__ import annotations

import dataclasses

import torch

from llmkit.core import ops
from llmkit.core.models.llama import LlamaModel
from llmkit.core.ops import PagedKVCache

from .sequence import Sequence


@dataclasses.dataclass
class StepInputs:
    """Tensors for one forward: flat tokens, their positions and slots, and per-sequence tables."""

    input_ids: torch.Tensor  # [N]
    positions: torch.Tensor  # [N]
    slot_mapping: torch.Tensor  # [N]
    num_decode: int  # the first num_decode tokens each belong to a decoding sequence
    decode_block_tables: torch.Tensor  # [D, max_blocks]
    decode_seq_lens: torch.Tensor  # [D]
    prefill_block_tables: torch.Tensor  # [P, max_blocks]
    prefill_seq_lens: torch.Tensor  # [P]
    query_start_loc: torch.Tensor  # [P + 1], offsets into the prefill part
    first_rows: list[int]  # each sequence's first row in the flat batch
    logit_rows: list[list[int]]  # rows whose logits each sequence needs: [] mid-prefill, [last] to sample,
    # or the rows of the last token and its drafts to verify them


class PagedAttention:
    """The `AttentionContext` of one engine step."""

    def __init__(self, caches: list[PagedKVCache], inputs: StepInputs, scale: float):
        self.caches, self.inputs, self.scale = caches, inputs, scale

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        cache, step = self.caches[layer], self.inputs
        ops.reshape_and_cache(key, value, cache, step.slot_mapping)
        out = torch.empty_like(query)
        d = step.num_decode
        if d:
            ops.paged_attention_decode(
                out[:d], query[:d], cache, step.decode_block_tables, step.decode_seq_lens, self.scale
            )
        if d < query.shape[0]:
            ops.paged_attention_prefill(
                out[d:],
                query[d:],
                cache,
                step.prefill_block_tables,
                step.prefill_seq_lens,
                step.query_start_loc,
                self.scale,
            )
        return out


def _block_tables(sequences: list[Sequence], device: torch.device) -> torch.Tensor:
    width = max((len(s.block_table) for s in sequences), default=0)
    table = torch.zeros(len(sequences), max(width, 1), dtype=torch.int32)
    for row, seq in enumerate(sequences):
        table[row, : len(seq.block_table)] = torch.tensor(seq.block_table, dtype=torch.int32)
    return table.to(device)


class ModelRunner:
    def __init__(self, model: LlamaModel, caches: list[PagedKVCache], block_size: int):
        self.model, self.caches, self.block_size = model, caches, block_size
        self.device = model.device
        self.scale = model.config.head_dim**-0.5

    def slot(self, seq: Sequence, position: int) -> int:
        return seq.block_table[position // self.block_size] * self.block_size + position % self.block_size

    def prepare(self, batch: list[tuple[Sequence, int]]) -> tuple[StepInputs, list[Sequence]]:
        """Order the batch (decodes first) and build the step's tensors."""
        decodes = [(s, n) for s, n in batch if n == 1 and s.is_decoding]
        prefills = [(s, n) for s, n in batch if not (n == 1 and s.is_decoding)]
        ordered = decodes + prefills
        ids, positions, slots, first_rows, logit_rows = [], [], [], [], []
        for seq, count in ordered:
            start = seq.num_computed_tokens
            first_rows.append(len(ids))
            ids.extend((seq.token_ids() + seq.draft_token_ids)[start : start + count])
            for position in range(start, start + count):
                positions.append(position)
                slots.append(self.slot(seq, position))
            end = len(ids) - 1
            finishes = start + count == seq.num_tokens + len(seq.draft_token_ids)
            logit_rows.append(list(range(end - len(seq.draft_token_ids), end + 1)) if finishes else [])
        starts = [0]
        for _, count in prefills:
            starts.append(starts[-1] + count)

        def tensor(values, dtype=torch.int64):
            return torch.tensor(values, dtype=dtype, device=self.device)

        inputs = StepInputs(
            input_ids=tensor(ids),
            positions=tensor(positions),
            slot_mapping=tensor(slots),
            num_decode=len(decodes),
            decode_block_tables=_block_tables([s for s, _ in decodes], self.device),
            decode_seq_lens=tensor([s.num_tokens for s, _ in decodes], torch.int32),
            prefill_block_tables=_block_tables([s for s, _ in prefills], self.device),
            prefill_seq_lens=tensor([s.num_computed_tokens + n for s, n in prefills], torch.int32),
            query_start_loc=tensor(starts, torch.int32),
            first_rows=first_rows,
            logit_rows=logit_rows,
        )
        return inputs, [s for s, _ in ordered]

    @torch.inference_mode()
    def execute(self, inputs: StepInputs) -> torch.Tensor:
        """Final hidden states [N, hidden] of every token in the step."""
        return self.model(inputs.input_ids, inputs.positions, PagedAttention(self.caches, inputs, self.scale))

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """float32 logits [len(rows), V] of the given rows."""
        return self.model.compute_logits(hidden[torch.tensor(rows, dtype=torch.int64, device=self.device)])

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
            slot_mapping=tensor([self.slot(s, p) for s, p in zip(sequences, positions, strict=True)]),
            num_decode=len(sequences),
            decode_block_tables=_block_tables(sequences, self.device),
            decode_seq_lens=tensor([p + 1 for p in positions], torch.int32),
            prefill_block_tables=_block_tables([], self.device),
            prefill_seq_lens=tensor([], torch.int32),
            query_start_loc=tensor([0], torch.int32),
            first_rows=list(range(len(sequences))),
            logit_rows=[[i] for i in range(len(sequences))],
        )
        hidden = self.model(
            inputs.input_ids, inputs.positions, PagedAttention(self.caches, inputs, self.scale), num_layers
        )
        return self.model.compute_logits(hidden)
