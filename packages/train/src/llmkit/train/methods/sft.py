"""SFT: the causal LM loss, averaged over the target tokens of the whole batch (all micro-batches, all processes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..config import SFTConfig
from ..data.encoding import TokenizedSequence
from ..data.packing import TokenBatch, collate, pack
from ..data.records import ChatRecord
from ..data.truncation import Truncation
from ..modeling.forward import hidden_states, target_logprobs
from .base import LossOutput, MicroBatch, TrainingModule
from .supervised import SupervisedMethod


@dataclasses.dataclass
class SFTBatch(MicroBatch):
    tokens_batch: TokenBatch


class SFTModule(TrainingModule):
    def forward(self, batch: SFTBatch) -> LossOutput:
        tokens = batch.tokens_batch
        logprobs = target_logprobs(self.policy, hidden_states(self.policy, tokens), tokens)
        return LossOutput(-logprobs.sum())


def _loss_on(record: Any, option: str) -> str:
    if option != "auto":
        return option
    return "assistant" if isinstance(record, ChatRecord) else "completion"


class SFTMethod(SupervisedMethod):
    name = "sft"
    config_class = SFTConfig
    record_kind = "sft"
    config: SFTConfig

    def encode(self, records: list[tuple[str, Any]], truncation: Truncation) -> list[TokenizedSequence]:
        encoder = self.runtime.encoder(self.config.add_eos)
        sequences = []
        for where, record in records:
            loss_on = _loss_on(record, self.config.loss_on)
            if isinstance(record, ChatRecord):
                seq = encoder.encode_conversation(record.messages)
                if loss_on == "completion":
                    last = _last_turn_start(seq.targets)
                    seq = TokenizedSequence(seq.ids, [t and i >= last for i, t in enumerate(seq.targets)])
            else:
                seq = encoder.encode_completion(record.prompt, record.completion).joined()
            if loss_on == "all":
                seq = TokenizedSequence(seq.ids, [True] * len(seq.ids))
            kept = truncation.sequence(seq, where)
            if kept is not None:
                sequences.append(kept)
        return sequences

    def group(self, items: list[TokenizedSequence]) -> list[list[TokenizedSequence]]:
        if self.config.packing:
            return pack(items, self.config.max_length)
        return [[seq] for seq in items]

    def build_module(self) -> SFTModule:
        self.module = SFTModule(self.runtime.policy)
        return self.module

    def micro_batch(self, rows: Sequence[list[TokenizedSequence]]) -> SFTBatch:
        tokens = collate(rows, self.runtime.pad_id).to(self.runtime.device)
        return SFTBatch(units=tokens.num_targets, tokens=tokens.num_tokens, tokens_batch=tokens)


def _last_turn_start(targets: list[bool]) -> int:
    """Index where the last run of target tokens begins (the final assistant turn)."""
    index = len(targets)
    while index > 0 and not targets[index - 1]:
        index -= 1
    while index > 0 and targets[index - 1]:
        index -= 1
    return index
