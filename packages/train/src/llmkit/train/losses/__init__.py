"""The losses, as pure functions of tensors (each checked against hand-computed values and TRL)."""

from .policy_gradient import (
    AdaptiveKLController,
    aggregate_token_loss,
    generalized_advantages,
    group_advantages,
    grpo_token_loss,
    kl_estimate,
    masked_mean,
    ppo_policy_loss,
    ppo_value_loss,
    whiten,
)
from .preference import bradley_terry_loss, dpo_loss

__all__ = [
    "AdaptiveKLController",
    "aggregate_token_loss",
    "bradley_terry_loss",
    "dpo_loss",
    "generalized_advantages",
    "group_advantages",
    "grpo_token_loss",
    "kl_estimate",
    "masked_mean",
    "ppo_policy_loss",
    "ppo_value_loss",
    "whiten",
]
