"""PPO: engine rollouts, a value head on the policy, per-token KL-penalized rewards, GAE, clipped policy and
value losses over several epochs of mini-batches, and an optional adaptive KL coefficient."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..config import PPOConfig
from ..data.packing import TokenBatch, collate
from ..errors import ConfigError
from ..losses import AdaptiveKLController, generalized_advantages, kl_estimate, ppo_policy_loss, ppo_value_loss
from ..modeling.forward import autocast, hidden_states, target_logprobs
from ..modeling.heads import ScalarHead
from .base import LossOutput, MicroBatch, StepPlan, TrainingModule, metric
from .online import OnlineMethod
from .reward import load_reward_model
from .rollouts import Rollout, per_sequence, rollout_batches, scatter_targets


def target_values(head: ScalarHead, hidden: torch.Tensor, tokens: TokenBatch) -> torch.Tensor:
    """V for each completion token, read from the hidden state that predicts it (position t - 1): [B, T]."""
    values = head(hidden[:, :-1])
    out = torch.zeros(tokens.targets.shape, dtype=values.dtype, device=values.device)
    return out.masked_scatter(tokens.targets, values[tokens.targets[:, 1:]])


@dataclasses.dataclass
class PPOBatch(MicroBatch):
    tokens_batch: TokenBatch
    old_logprobs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOModule(TrainingModule):
    def __init__(self, policy, config: PPOConfig):
        super().__init__(policy)
        self.value_head = ScalarHead(policy.config.hidden_size, policy.dtype, policy.device)
        self.config = config

    def own_learning_rates(self) -> list[tuple[list[nn.Parameter], float]]:
        """The value head is a fresh linear layer: at the policy's rate it barely moves from its start."""
        return [(list(self.value_head.parameters()), self.config.value_lr)]

    def evaluate_tokens(self, tokens: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = hidden_states(self.policy, tokens)
        logprobs = target_logprobs(self.policy, hidden, tokens, self.config.logprob_temperature)
        return logprobs, target_values(self.value_head, hidden, tokens)

    def forward(self, batch: PPOBatch) -> LossOutput:
        config, mask = self.config, batch.tokens_batch.targets
        logprobs, values = self.evaluate_tokens(batch.tokens_batch)
        policy_loss, policy_clipped = ppo_policy_loss(logprobs, batch.old_logprobs, batch.advantages, config.cliprange)
        value_loss, value_clipped = ppo_value_loss(values, batch.old_values, batch.returns, config.cliprange_value)
        per_token = policy_loss + config.vf_coef * value_loss
        count = mask.sum()
        approx_kl = 0.5 * (logprobs.detach() - batch.old_logprobs) ** 2
        return LossOutput(
            (per_token * mask).sum(),
            {
                "policy_loss": metric((policy_loss.detach() * mask).sum(), count),
                "value_loss": metric((value_loss.detach() * mask).sum(), count),
                "clip_fraction": metric((policy_clipped * mask).sum(), count),
                "value_clip_fraction": metric((value_clipped * mask).sum(), count),
                "approx_kl": metric((approx_kl * mask).sum(), count),
            },
        )


@dataclasses.dataclass
class ScoredRollout:
    rollout: Rollout
    old_logprobs: torch.Tensor  # per completion token
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOMethod(OnlineMethod):
    name = "ppo"
    config_class = PPOConfig
    config: PPOConfig

    def __init__(self, config: PPOConfig, runtime):
        super().__init__(config, runtime)
        self.reward_model = None
        if config.reward_model:
            self.reward_model = load_reward_model(config.reward_model, runtime.device, config.dtype)
            theirs, ours = self.reward_model.pretrained.tokenizer.backend, runtime.pretrained.tokenizer.backend
            if theirs.to_str() != ours.to_str():
                raise ConfigError(f"the reward model {config.reward_model} uses another tokenizer than the policy")
        if self.reward_model is None and not config.verifiers and any(r.verifiers is None for r in self.records):
            raise ConfigError("ppo needs a reward: set reward_model, or verifiers (or name one in every record)")
        if config.verifiers or any(r.verifiers for r in self.records):
            self.rewards.check([r for r in self.records if r.verifiers is not None or config.verifiers])
        self.kl_controller = AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)

    @classmethod
    def needs_reference(cls, config: PPOConfig) -> bool:
        return True

    def build_module(self) -> PPOModule:
        self.module = PPOModule(self.runtime.policy, self.config)
        self.start_engine()
        return self.module

    def updates_per_step(self) -> int:
        return self.config.num_ppo_epochs * self.config.num_mini_batches

    def _scores(self, rollouts: list[Rollout], records) -> tuple[torch.Tensor, dict[str, float]]:
        scores = torch.zeros(len(rollouts))
        extra: dict[str, float] = {}
        if self.reward_model is not None:
            sequences = [r.prompt_ids + r.completion_ids for r in rollouts]
            pad = self.runtime.pad_id
            chunks = [
                sequences[i : i + self.config.micro_batch_size]
                for i in range(0, len(sequences), self.config.micro_batch_size)
            ]
            model_scores = torch.cat([self.reward_model.score(chunk, pad).float().cpu() for chunk in chunks])
            scores += model_scores
            extra["reward_model_score"] = self.runtime.context.sum([float(model_scores.sum())])[0] / max(
                1, self.runtime.context.sum([len(rollouts)])[0]
            )
        if self.config.verifiers or any(records[r.prompt_index].verifiers for r in rollouts):
            verifier_rewards, means = self.verifier_rewards(rollouts, records)
            scores += verifier_rewards
            extra.update(means)
        if self.config.missing_eos_penalty:
            scores -= (
                self.config.missing_eos_penalty * torch.tensor([r.finish_reason == "length" for r in rollouts]).float()
            )
        return scores, extra

    def _explained_variance(self, scored: list[ScoredRollout]) -> float:
        """1 - Var(returns - values) / Var(returns) over every completion token of the step (all processes),
        from the rollout's values before the update: 1 is a perfect value head, 0 no better than a constant."""
        values = torch.cat([s.old_values for s in scored]).double()
        returns = torch.cat([s.returns for s in scored]).double()
        residual = returns - values
        sums = self.runtime.context.sum(
            [
                float(len(returns)),
                float(returns.sum()),
                float((returns**2).sum()),
                float(residual.sum()),
                float((residual**2).sum()),
            ]
        )
        count = max(sums[0], 1.0)
        returns_variance = sums[2] / count - (sums[1] / count) ** 2
        residual_variance = sums[4] / count - (sums[3] / count) ** 2
        return 1.0 - residual_variance / returns_variance if returns_variance > 1e-12 else float("nan")

    @torch.no_grad()
    def _score_tokens(self, rollouts: list[Rollout], scores: torch.Tensor) -> tuple[list[ScoredRollout], float]:
        """Old log-probs and values, reference log-probs, KL-penalized rewards, GAE. Returns the mean KL."""
        config, device = self.config, self.runtime.device
        out, kl_sums = [], []
        self.module.eval()
        start = 0
        for batch in rollout_batches(rollouts, config.micro_batch_size, self.runtime.pad_id, device):
            with autocast(device, config.bf16):
                logprobs, values = self.module.evaluate_tokens(batch)
                with self.runtime.reference_model() as reference:
                    reference_logprobs = target_logprobs(
                        reference, hidden_states(reference, batch), batch, config.logprob_temperature
                    )
            mask = batch.targets.float()
            kl = kl_estimate(logprobs, reference_logprobs, config.kl_estimator) * mask
            rewards = -self.kl_controller.value * kl
            last = batch.valid.long().sum(-1) - 1
            rows = torch.arange(len(last), device=device)
            rewards[rows, last] += scores[start : start + len(last)].to(device)
            advantages, returns = generalized_advantages(rewards, values * mask, mask, config.gamma, config.lam)
            kl_sums += kl.sum(-1).tolist()
            for i, (lp, v, a, r) in enumerate(
                zip(*(per_sequence(t, batch) for t in (logprobs, values, advantages, returns)), strict=True)
            ):
                out.append(ScoredRollout(rollouts[start + i], lp, v, a, r))
            start += len(last)
        self.module.train()
        return out, sum(kl_sums) / max(1, len(kl_sums))

    def _whiten(self, scored: list[ScoredRollout]) -> None:
        """Advantages to mean 0, std 1 over every completion token of the step (all processes)."""
        flat = torch.cat([s.advantages for s in scored]).double()
        total, squares, count = self.runtime.context.sum([float(flat.sum()), float((flat**2).sum()), float(len(flat))])
        mean = total / count
        std = (max(squares / count - mean**2, 0.0) * count / max(count - 1, 1)) ** 0.5
        for s in scored:
            s.advantages = (s.advantages - mean) / (std + 1e-8)

    def _micro_batch(self, items: list[ScoredRollout]) -> PPOBatch:
        tokens = collate([[s.rollout.sequence()] for s in items], self.runtime.pad_id).to(self.runtime.device)

        def place(name: str) -> torch.Tensor:
            return scatter_targets([getattr(s, name) for s in items], tokens)

        return PPOBatch(
            units=float(tokens.num_targets),
            tokens=tokens.num_tokens,
            tokens_batch=tokens,
            old_logprobs=place("old_logprobs"),
            old_values=place("old_values"),
            advantages=place("advantages"),
            returns=place("returns"),
        )

    def plan_step(self, step: int) -> StepPlan:
        config, context = self.config, self.runtime.context
        started = time.perf_counter()
        numbers, indices = self.take_prompts()
        records = [self.records[i] for i in indices]
        rollouts = self.engine.generate([self.prompts[i] for i in indices], numbers, step, 1)
        generated = time.perf_counter()
        scores, extra = self._scores(rollouts, records)
        scored, mean_kl = self._score_tokens(rollouts, scores)
        explained_variance = self._explained_variance(scored)
        if config.whiten_advantages:
            self._whiten(scored)
        mean_kl = context.sum([mean_kl])[0] / context.world_size
        kl_coef = self.kl_controller.value
        self.kl_controller.update(mean_kl, len(rollouts) * context.world_size)
        self.log_completions(step, rollouts, records, scores)
        updates = []
        generator = torch.Generator().manual_seed(config.seed * 7_919 + step)
        for _ in range(config.num_ppo_epochs):
            order = torch.randperm(len(scored), generator=generator).tolist()
            for part in range(config.num_mini_batches):
                chosen = [scored[i] for i in order[part :: config.num_mini_batches]]
                size = config.micro_batch_size
                updates.append([self._micro_batch(chosen[j : j + size]) for j in range(0, len(chosen), size)])
        prepared = time.perf_counter()
        metrics = {
            **self.reward_stats(scores),
            **extra,
            **self.completion_stats(rollouts),
            "kl": mean_kl,
            "kl_coef": kl_coef,
            "value_explained_variance": explained_variance,
            "rollout_time": generated - started,
            "scoring_time": prepared - generated,
        }
        return StepPlan(updates, metrics)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "kl_coef": self.kl_controller.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.kl_controller.value = float(state["kl_coef"])

    def save_final(self, directory: Path, full_state: dict[str, torch.Tensor] | None = None) -> None:
        super().save_final(directory, full_state)
        head = {k: v.detach().cpu().contiguous() for k, v in self.module.value_head.state_dict().items()}
        save_file(head, str(directory / "value_head.safetensors"))
