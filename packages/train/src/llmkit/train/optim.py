"""AdamW over the trainable parameters and the learning-rate schedule (linear warmup, then cosine or linear)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(
    module: nn.Module, config: TrainConfig, own_rates: Sequence[tuple[Sequence[nn.Parameter], float]] = ()
) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (norms and biases are 1-D and excluded). `own_rates` lists
    parameters that train at their own peak rate instead of `learning_rate` (PPO's value head); the
    schedule scales every rate alike; the groups at `learning_rate` come first (the loop logs group 0's)."""
    rate_of = {id(param): rate for params, rate in own_rates for param in params}
    buckets: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for param in module.parameters():
        if param.requires_grad:
            rate = rate_of.pop(id(param), config.learning_rate)
            buckets.setdefault((rate, param.ndim >= 2), []).append(param)
    if rate_of:
        raise ValueError(f"{len(rate_of)} parameter(s) given their own learning rate are not trainable parameters")
    if not buckets:
        raise ValueError("the model has no trainable parameter")
    groups = [
        {"params": params, "lr": rate, "weight_decay": config.weight_decay if decays else 0.0}
        for (rate, decays), params in sorted(
            buckets.items(), key=lambda item: (item[0][0] != config.learning_rate, not item[0][1])
        )
    ]
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon
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
