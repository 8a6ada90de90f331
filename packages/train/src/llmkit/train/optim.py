"""AdamW over the trainable parameters and the learning-rate schedule (linear warmup, then cosine or linear)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (norms and biases are 1-D and excluded)."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameter")
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )


def learning_rate_factor(update: int, total_updates: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak rate for 0-based optimizer update `update`: (k + 1) / warmup during warmup,
    then cosine or linear from 1 towards `min_ratio` (reached after the last update), or constant."""
    if update < warmup:
        return (update + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (update - warmup) / max(1, total_updates - warmup))
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    raise ValueError(f"unknown lr_scheduler {schedule!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_updates: int
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(update: int) -> float:
        return learning_rate_factor(
            update, total_updates, config.warmup_steps, config.lr_scheduler, config.min_lr_ratio
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
