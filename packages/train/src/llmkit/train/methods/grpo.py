"""GRPO / RLVR: G completions per prompt from the engine, verifier rewards, group-relative advantages,
a clipped ratio with epsilon_low/epsilon_high and a k3 KL to the reference."""

from __future__ import annotations

import dataclasses
import time

import torch

from ..config import GRPOConfig
from ..data.packing import TokenBatch
from ..losses import aggregate_token_loss, group_advantages, grpo_token_loss
from ..modeling.forward import autocast, hidden_states, target_logprobs
from .base import LossOutput, MicroBatch, StepPlan, TrainingModule, metric
from .online import OnlineMethod
from .rollouts import rollout_batches


@dataclasses.dataclass
class GRPOBatch(MicroBatch):
    tokens_batch: TokenBatch
    advantages: torch.Tensor  # [B], one per sequence
    old_logprobs: torch.Tensor | None  # [B, T]; None: the rollout policy is the current one (ratio 1)
    reference_logprobs: torch.Tensor | None  # [B, T]; None when beta is 0


class GRPOModule(TrainingModule):
    def __init__(self, policy, config: GRPOConfig):
        super().__init__(policy)
        self.config = config

    def forward(self, batch: GRPOBatch) -> LossOutput:
        config, tokens = self.config, batch.tokens_batch
        temperature = config.logprob_temperature
        logprobs = target_logprobs(self.policy, hidden_states(self.policy, tokens), tokens, temperature)
        old = batch.old_logprobs if batch.old_logprobs is not None else logprobs.detach()
        per_token, kl = grpo_token_loss(
            logprobs, old, batch.advantages, config.epsilon, config.epsilon_high, config.beta, batch.reference_logprobs
        )
        mask = tokens.targets
        loss_sum, _ = aggregate_token_loss(per_token, mask, config.loss_aggregation, config.loss_normalizer)
        ratio = (logprobs - old).detach().exp()
        advantages = batch.advantages[:, None]
        clipped = ((ratio < 1 - config.epsilon) & (advantages < 0)) | (
            (ratio > 1 + config.epsilon_high) & (advantages > 0)
        )
        count = mask.sum()
        return LossOutput(
            loss_sum,
            {"kl": metric((kl.detach() * mask).sum(), count), "clip_fraction": metric((clipped & mask).sum(), count)},
        )


def aggregation_units(tokens: TokenBatch, config: GRPOConfig) -> float:
    rows = len(tokens.input_ids)
    if config.loss_aggregation == "sequence_mean":
        return float(rows)
    if config.loss_aggregation == "token_mean":
        return float(tokens.num_targets)
    return float(rows * config.loss_normalizer)


class GRPOMethod(OnlineMethod):
    name = "grpo"
    config_class = GRPOConfig
    config: GRPOConfig

    def __init__(self, config: GRPOConfig, runtime):
        super().__init__(config, runtime)
        self.rewards.check(self.records)

    @classmethod
    def needs_reference(cls, config: GRPOConfig) -> bool:
        return config.beta > 0

    def build_module(self) -> GRPOModule:
        self.module = GRPOModule(self.runtime.policy, self.config)
        self.start_engine()
        return self.module

    def updates_per_step(self) -> int:
        return self.config.num_iterations

    def explain_zero_loss(self, record: dict) -> str:
        if self.config.num_iterations == 1 and self.config.loss_aggregation == "sequence_mean":
            return (
                "the loss value is 0 by construction (ratio 1 at num_iterations=1, and each group's advantages "
                f"sum to 0 under sequence_mean); the gradient is not (grad_norm {record.get('grad_norm', 0):.3g})"
            )
        return super().explain_zero_loss(record)

    @torch.no_grad()
    def _logprobs(self, batch: TokenBatch, reference: bool) -> torch.Tensor:
        policy = self.runtime.policy
        was_training = policy.training
        policy.eval()
        try:
            with autocast(self.runtime.device, self.config.bf16):
                temperature = self.config.logprob_temperature
                if reference:
                    with self.runtime.reference_model() as model:
                        return target_logprobs(model, hidden_states(model, batch), batch, temperature)
                return target_logprobs(policy, hidden_states(policy, batch), batch, temperature)
        finally:
            policy.train(was_training)

    def plan_step(self, step: int) -> StepPlan:
        config, context = self.config, self.runtime.context
        started = time.perf_counter()
        numbers, indices = self.take_prompts()
        records = [self.records[i] for i in indices]
        rollouts = self.engine.generate([self.prompts[i] for i in indices], numbers, step, config.num_generations)
        generated = time.perf_counter()
        rewards, verifier_means = self.verifier_rewards(rollouts, records)
        stats = self.reward_stats(rewards)
        scale = "none" if config.scale_rewards == "batch" else config.scale_rewards
        advantages, flat = group_advantages(rewards, config.num_generations, scale)
        if config.scale_rewards == "batch":
            advantages = advantages / (stats["reward_std"] + 1e-4)
        scored = time.perf_counter()
        flat_groups, groups = context.sum([flat, len(records)])
        micro = []
        for start, batch in zip(
            range(0, len(rollouts), config.micro_batch_size),
            rollout_batches(rollouts, config.micro_batch_size, self.runtime.pad_id, self.runtime.device),
            strict=True,
        ):
            micro.append(
                GRPOBatch(
                    units=aggregation_units(batch, config),
                    tokens=batch.num_tokens,
                    tokens_batch=batch,
                    advantages=advantages[start : start + len(batch.input_ids)].to(self.runtime.device),
                    old_logprobs=self._logprobs(batch, False) if config.num_iterations > 1 else None,
                    reference_logprobs=self._logprobs(batch, True) if config.beta > 0 else None,
                )
            )
        prepared = time.perf_counter()
        self.log_completions(step, rollouts, records, rewards)
        notes = []
        if flat_groups == groups:
            notes.append(
                f"all {int(groups)} groups have equal rewards within each group (mean reward "
                f"{stats['reward_mean']:.3g}): every advantage is 0, so the policy-gradient term is 0"
                + ("; with beta=0 the loss is exactly 0" if config.beta == 0 else "; only the KL term acts")
            )
        metrics = {
            **stats,
            **verifier_means,
            **self.completion_stats(rollouts),
            "zero_std_fraction": flat_groups / groups,
            "rollout_time": generated - started,
            "scoring_time": scored - generated,
            "logprob_time": prepared - scored,
        }
        return StepPlan([micro] * config.num_iterations, metrics, notes)
