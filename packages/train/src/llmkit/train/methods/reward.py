"""Reward modelling: a scalar head on the LM's last token, trained with the Bradley-Terry loss on pairs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from llmkit.core.models.llama import LlamaModel
from llmkit.core.models.pretrained import Pretrained, load_pretrained

from ..config import RewardConfig
from ..data.encoding import PromptCompletion, TokenizedSequence
from ..data.packing import TokenBatch, collate
from ..data.records import PreferenceRecord
from ..data.truncation import Truncation
from ..errors import CheckpointError, DataError
from ..losses import bradley_terry_loss
from ..modeling.forward import hidden_states, last_valid_index
from ..modeling.heads import ScalarHead
from .base import LossOutput, MicroBatch, TrainingModule, metric, policy_from_state, preference_accuracy, save_policy
from .supervised import SupervisedMethod

SCORE_HEAD = "score_head.safetensors"
REWARD_MODEL_INFO = "reward_model.json"


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    chosen: PromptCompletion
    rejected: PromptCompletion
    margin: float


@dataclasses.dataclass
class PairBatch(MicroBatch):
    """Rows 0..N-1 are the chosen sequences, rows N..2N-1 the rejected ones."""

    tokens_batch: TokenBatch
    margins: torch.Tensor


def encode_pairs(encoder, records: list[tuple[str, Any]], truncation: Truncation) -> list[PreferencePair]:
    pairs = []
    for where, record in records:
        assert isinstance(record, PreferenceRecord)
        chosen = encoder.encode_completion(record.prompt, record.chosen)
        rejected = encoder.encode_completion(record.prompt, record.rejected)
        if chosen.prompt != rejected.prompt:
            raise DataError(
                f"{where}: the prompt tokenizes differently before 'chosen' and 'rejected' (the tokenizer merges "
                "text across the end of the prompt); end the prompt with whitespace or use messages"
            )
        kept = truncation.pair(chosen.prompt, [chosen.completion, rejected.completion], where)
        if kept is None:
            continue
        chosen, rejected = kept
        pairs.append(PreferencePair(chosen, rejected, record.margin))
    return pairs


def pair_batch(pairs: Sequence[PreferencePair], pad_id: int, device: torch.device) -> PairBatch:
    rows = [[p.chosen.joined()] for p in pairs] + [[p.rejected.joined()] for p in pairs]
    tokens = collate(rows, pad_id).to(device)
    margins = torch.tensor([p.margin for p in pairs], dtype=torch.float32, device=device)
    return PairBatch(units=len(pairs), tokens=tokens.num_tokens, tokens_batch=tokens, margins=margins)


def score_sequences(policy: LlamaModel, head: ScalarHead, tokens: TokenBatch) -> torch.Tensor:
    """The head's value at each row's last token [B]."""
    hidden = hidden_states(policy, tokens)
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_valid_index(tokens)]
    return head(last)


class RewardModule(TrainingModule):
    def __init__(self, policy: LlamaModel, config: RewardConfig):
        super().__init__(policy)
        self.score_head = ScalarHead(policy.config.hidden_size, policy.dtype, policy.device)
        self.config = config

    def forward(self, batch: PairBatch) -> LossOutput:
        rewards = score_sequences(self.policy, self.score_head, batch.tokens_batch)
        chosen, rejected = rewards.chunk(2)
        margin = batch.margins if self.config.use_margin else None
        losses = bradley_terry_loss(chosen, rejected, margin, self.config.center_rewards_coefficient)
        n = len(chosen)
        detached_chosen, detached_rejected = chosen.detach(), rejected.detach()
        return LossOutput(
            losses.sum(),
            {
                "accuracy": metric(preference_accuracy(detached_chosen, detached_rejected).sum(), n),
                "reward_chosen": metric(detached_chosen.sum(), n),
                "reward_rejected": metric(detached_rejected.sum(), n),
                "reward_margin": metric((detached_chosen - detached_rejected).sum(), n),
                "reward_mean": metric((detached_chosen + detached_rejected).sum(), 2 * n),
            },
        )


class RewardMethod(SupervisedMethod):
    name = "reward"
    config_class = RewardConfig
    headline_metrics = ("accuracy",)  # pairs whose chosen reply scores above the rejected one
    record_kind = "reward"
    config: RewardConfig

    def encode(self, records: list[tuple[str, Any]], truncation: Truncation) -> list[PreferencePair]:
        return encode_pairs(self.runtime.encoder(), records, truncation)

    def build_module(self) -> RewardModule:
        policy = self.runtime.policy
        if policy.lm_head is not None:
            policy.lm_head.requires_grad_(False)  # the reward model never uses the LM head
        self.module = RewardModule(policy, self.config)
        return self.module

    def micro_batch(self, pairs: Sequence[PreferencePair]) -> PairBatch:
        return pair_batch(pairs, self.runtime.pad_id, self.runtime.device)

    def save_final(self, directory: Path, full_state: dict[str, torch.Tensor] | None = None) -> None:
        policy = policy_from_state(self.runtime, full_state)
        save_policy(self.runtime, directory, True, policy)
        head = {k: v.detach().cpu().contiguous() for k, v in self.module.score_head.state_dict().items()}
        if full_state is not None:
            head = {k.removeprefix("score_head."): v for k, v in full_state.items() if k.startswith("score_head.")}
        save_file(head, str(directory / SCORE_HEAD))
        info = {"format": "llmkit-reward", "base_model": self.config.model, "eval": self.last_eval}
        (directory / REWARD_MODEL_INFO).write_text(json.dumps(info, indent=2))


@dataclasses.dataclass
class RewardModel:
    """A trained reward model: `score(token id lists) -> rewards` (used by PPO)."""

    pretrained: Pretrained
    head: ScalarHead

    @torch.no_grad()
    def score(self, sequences: Sequence[list[int]], pad_id: int) -> torch.Tensor:
        rows = [[TokenizedSequence(list(ids), [False] * len(ids))] for ids in sequences]
        tokens = collate(rows, pad_id).to(self.pretrained.model.device)
        return score_sequences(self.pretrained.model, self.head, tokens)


def load_reward_model(directory: str | Path, device: torch.device | str = "cpu", dtype: str = "float32") -> RewardModel:
    """Read `llmkit train reward` output (its final/ directory, or the run directory holding it)."""
    directory = Path(directory)
    if not (directory / REWARD_MODEL_INFO).is_file() and (directory / "final" / REWARD_MODEL_INFO).is_file():
        directory = directory / "final"
    if not (directory / REWARD_MODEL_INFO).is_file():
        raise CheckpointError(
            f"{directory} is not a reward model (no {REWARD_MODEL_INFO}); train one with `llmkit train reward`"
        )
    pretrained = load_pretrained(directory / "model", dtype=dtype, device=device, quiet=True)
    head = ScalarHead(pretrained.config.hidden_size, pretrained.model.dtype, device)
    head.load_state_dict(load_file(str(directory / SCORE_HEAD)))
    for param in [*pretrained.model.parameters(), *head.parameters()]:
        param.requires_grad_(False)
    return RewardModel(pretrained, head.eval())
