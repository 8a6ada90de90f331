"""A scalar head on the LM's final hidden states: the reward model's score and PPO's value."""

from __future__ import annotations

import torch
from torch import nn


class ScalarHead(nn.Module):
    """hidden [..., H] -> one float32 number per position; starts near zero so it does not jolt training."""

    def __init__(self, hidden_size: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1, dtype=dtype, device=device)
        nn.init.normal_(self.proj.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden).squeeze(-1).float()
