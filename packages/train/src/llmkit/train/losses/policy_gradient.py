"""PPO and GRPO losses on per-token tensors [B, T] with a completion mask (True on generated tokens)."""

from __future__ import annotations

import torch


def kl_estimate(logprobs: torch.Tensor, reference_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate from sampled tokens (Schulman's k1 and k3)."""
    log_ratio = reference_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return log_ratio.exp() - 1 - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; choose k1 or k3")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalize to unit variance (and zero mean) over the masked entries."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    count = mask.sum()
    if count > 1:
        variance = variance * count / (count - 1)
    out = (values - mean) * torch.rsqrt(variance + 1e-8)
    return (out if shift_mean else out + mean) * mask


def generalized_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) over right-padded completions: advantages and returns (= A + V)."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def ppo_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, cliprange: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate max(-A r, -A clip(r, 1 - e, 1 + e)) and whether the clip was active."""
    ratio = (logprobs - old_logprobs).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    return torch.maximum(unclipped, clipped), (clipped > unclipped).float()


def ppo_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, cliprange_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token 0.5 * max((V - R)^2, (clip(V, V_old +- e) - R)^2) and whether the clip was active."""
    clipped_values = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped), (clipped > unclipped).float()


class AdaptiveKLController:
    """Ziegler et al. (2019): move the KL coefficient so the measured KL tracks `target` over `horizon`."""

    def __init__(self, initial: float, target: float, horizon: int):
        self.value, self.target, self.horizon = initial, target, horizon

    def update(self, current_kl: float, num_sequences: int) -> float:
        if self.target > 0:
            error = min(max(current_kl / self.target - 1, -0.2), 0.2)
            self.value *= 1 + error * num_sequences / self.horizon
        return self.value


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> tuple[torch.Tensor, int]:
    """GRPO advantages r - mean(group), divided by the group's (or the batch's) std + 1e-4 unless scale is
    "none"; also the number of groups whose rewards are all equal (they carry no signal)."""
    grouped = rewards.view(-1, group_size)
    mean, std = grouped.mean(1, keepdim=True), grouped.std(1, keepdim=True)
    advantages = grouped - mean
    if scale == "group":
        advantages = advantages / (std + 1e-4)
    elif scale == "batch":
        advantages = advantages / (rewards.std() + 1e-4)
    elif scale != "none":
        raise ValueError(f"unknown scale_rewards {scale!r}; choose group, batch or none")
    flat = (grouped.max(1).values - grouped.min(1).values) == 0
    return advantages.reshape(-1), int(flat.sum())


def grpo_token_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    beta: float = 0.0,
    reference_logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -min(r A, clip(r, 1 - e_low, 1 + e_high) A) + beta * k3 KL; advantages are per sequence [B].
    Also the per-token k3 KL (zeros when beta is 0)."""
    ratio = (logprobs - old_logprobs).exp()
    adv = advantages[:, None]
    loss = -torch.minimum(ratio * adv, ratio.clamp(1 - epsilon_low, 1 + epsilon_high) * adv)
    kl = torch.zeros_like(loss)
    if beta and reference_logprobs is not None:
        kl = kl_estimate(logprobs, reference_logprobs, "k3")
        loss = loss + beta * kl
    return loss, kl


def aggregate_token_loss(
    per_token: torch.Tensor, mask: torch.Tensor, aggregation: str, normalizer: int
) -> tuple[torch.Tensor, float]:
    """(loss sum, units) so that sum over micro-batches / sum of units is the batch loss:
    sequence_mean -> per-sequence means over sequences; token_mean -> over all tokens;
    constant -> token sum / (sequences x normalizer)."""
    mask = mask.to(per_token.dtype)
    if aggregation == "sequence_mean":
        per_sequence = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_sequence.sum(), float(per_token.shape[0])
    if aggregation == "token_mean":
        return (per_token * mask).sum(), float(mask.sum())
    if aggregation == "constant":
        return (per_token * mask).sum(), float(per_token.shape[0] * normalizer)
    raise ValueError(f"unknown loss_aggregation {aggregation!r}; choose sequence_mean, token_mean or constant")
