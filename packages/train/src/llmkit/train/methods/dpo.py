"""DPO: the policy's chosen-vs-rejected log-ratio against a frozen reference (live, or precomputed on disk)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from ..config import DPOConfig
from ..data.packing import TokenBatch
from ..data.truncation import Truncation
from ..losses import dpo_loss
from ..modeling.forward import sequence_logprobs
from ..runtime import Runtime
from .base import LossOutput, MicroBatch, TrainingModule, metric, preference_accuracy
from .reference_cache import ReferenceCache
from .reward import PreferencePair, encode_pairs, pair_batch
from .supervised import SupervisedMethod


@dataclasses.dataclass(frozen=True)
class DPOItem:
    pair: PreferencePair
    reference: tuple[float, float, int, int] | None  # chosen sum, rejected sum, chosen count, rejected count


@dataclasses.dataclass
class DPOBatch(MicroBatch):
    tokens_batch: TokenBatch
    reference: torch.Tensor | None  # [2N] summed reference log-probs, or None to compute them live


class DPOModule(TrainingModule):
    def __init__(self, runtime: Runtime, config: DPOConfig):
        super().__init__(runtime.policy)
        self.config = config
        self.runtime = runtime

    def forward(self, batch: DPOBatch) -> LossOutput:
        tokens = batch.tokens_batch
        policy_sums, counts = sequence_logprobs(self.policy, tokens)
        reference = batch.reference
        if reference is None:
            with torch.no_grad(), self.runtime.reference_model() as model:
                reference = sequence_logprobs(model, tokens)[0]
        policy_values, reference_values = policy_sums, reference
        if self.config.loss_type == "ipo":  # IPO compares per-token average log-probs
            policy_values, reference_values = policy_sums / counts, reference / counts
        policy_chosen, policy_rejected = policy_values.chunk(2)
        reference_chosen, reference_rejected = reference_values.chunk(2)
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            policy_chosen,
            policy_rejected,
            reference_chosen,
            reference_rejected,
            self.config.beta,
            self.config.loss_type,
            self.config.label_smoothing,
        )
        n = len(losses)
        sums_chosen, sums_rejected = policy_sums.detach().chunk(2)
        return LossOutput(
            losses.sum(),
            {
                "accuracy": metric(preference_accuracy(chosen_rewards, rejected_rewards).sum(), n),
                "reward_chosen": metric(chosen_rewards.sum(), n),
                "reward_rejected": metric(rejected_rewards.sum(), n),
                "reward_margin": metric((chosen_rewards - rejected_rewards).sum(), n),
                "logps_chosen": metric(sums_chosen.sum(), n),
                "logps_rejected": metric(sums_rejected.sum(), n),
            },
        )


class DPOMethod(SupervisedMethod):
    name = "dpo"
    config_class = DPOConfig
    headline_metrics = ("accuracy", "reward_margin")  # implicit-reward accuracy and margin
    record_kind = "dpo"
    config: DPOConfig

    def __init__(self, config: DPOConfig, runtime: Runtime):
        super().__init__(config, runtime)
        if config.reference_cache:
            cache = ReferenceCache(config.reference_cache, runtime, config)
            pairs = [*self.train_items, *self.eval_items]
            values = cache.load_or_build(pairs)
            self.notes.append(cache.message)
            items = [DPOItem(pair, value) for pair, value in zip(pairs, values, strict=True)]
            self.train_items, self.eval_items = items[: len(self.train_items)], items[len(self.train_items) :]
        else:
            self.train_items = [DPOItem(p, None) for p in self.train_items]
            self.eval_items = [DPOItem(p, None) for p in self.eval_items]

    @classmethod
    def needs_reference(cls, config: DPOConfig) -> bool:
        return True

    @classmethod
    def reference_name(cls, config: DPOConfig) -> str | None:
        return config.reference_model

    def encode(self, records: list[tuple[str, Any]], truncation: Truncation) -> list[PreferencePair]:
        return encode_pairs(self.runtime.encoder(), records, truncation)

    def build_module(self) -> DPOModule:
        self.module = DPOModule(self.runtime, self.config)
        return self.module

    def micro_batch(self, items: Sequence[DPOItem]) -> DPOBatch:
        batch = pair_batch([item.pair for item in items], self.runtime.pad_id, self.runtime.device)
        reference = None
        if items[0].reference is not None:
            values = [item.reference[0] for item in items] + [item.reference[1] for item in items]
            reference = torch.tensor(values, dtype=torch.float32, device=self.runtime.device)
        return DPOBatch(units=batch.units, tokens=batch.tokens, tokens_batch=batch.tokens_batch, reference=reference)
