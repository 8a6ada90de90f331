"""The SigLIP vision tower as Idefics3 / SmolVLM run it (NaViT-style positions for partially valid tiles).

Parameter names follow transformers' `Idefics3VisionTransformer`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VisionConfig


class VisionEmbeddings(nn.Module):
    """Patch embedding (a stride-`patch` conv) plus learned position embeddings on a fixed grid.

    A tile whose valid patches cover only part of the grid gets positions spread over the whole grid by
    bucketing fractional coordinates, exactly as transformers computes them (the same float ops)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.patches_per_side = config.patches_per_side
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.position_embedding = nn.Embedding(self.patches_per_side**2, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, C, H, W], patch_mask [B, H/patch, W/patch] bool -> [B, patches, hidden]."""
        batch = pixel_values.shape[0]
        embeddings = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        return embeddings + self.position_embedding(self.position_ids(patch_mask).view(batch, -1))

    def position_ids(self, patch_mask: torch.Tensor) -> torch.Tensor:
        side, device = self.patches_per_side, patch_mask.device
        boundaries = torch.arange(1 / side, 1.0, 1 / side, device=device)
        rows_valid = patch_mask[:, :, 0].sum(dim=1)
        cols_valid = patch_mask[:, 0, :].sum(dim=1)
        rows = torch.arange(patch_mask.shape[1], device=device, dtype=torch.float32)
        cols = torch.arange(patch_mask.shape[2], device=device, dtype=torch.float32)
        frac_rows = torch.clamp(rows[None, :] * (1.0 / rows_valid)[:, None], max=1.0 - 1e-6)
        frac_cols = torch.clamp(cols[None, :] * (1.0 / cols_valid)[:, None], max=1.0 - 1e-6)
        bucket_rows = torch.bucketize(frac_rows, boundaries, right=True)
        bucket_cols = torch.bucketize(frac_cols, boundaries, right=True)
        ids = bucket_rows[:, :, None] * side + bucket_cols[:, None, :]
        return torch.where(patch_mask, ids, torch.zeros_like(ids))


class VisionAttention(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """Bidirectional attention over [B, T, hidden]; `key_mask` [B, T] marks valid patches (None: all)."""
        b, t, _ = x.shape
        q, k, v = (proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2) for proj in self._qkv())
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))

    def _qkv(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        return self.q_proj, self.k_proj, self.v_proj


class VisionMLP(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.activation = config.hidden_act
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(vision_activation(self.fc1(x), self.activation))


def vision_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """The activations vision towers and projectors use, by their transformers names."""
    if name == "gelu_pytorch_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu(x)
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unknown vision activation {name!r}")


class VisionEncoderLayer(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = VisionAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VisionMLP(config)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), key_mask)
        return x + self.mlp(self.layer_norm2(x))


class VisionEncoder(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(VisionEncoderLayer(config) for _ in range(config.num_layers))


class SiglipVisionTower(nn.Module):
    """Tiles [B, C, H, W] (+ pixel mask [B, H, W]) -> patch features [B, patches, vision hidden]."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.config = config
        self.embeddings = VisionEmbeddings(config)
        self.encoder = VisionEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        patch = self.config.patch_size
        if pixel_mask is None:
            patch_mask = torch.ones(
                batch, height // patch, width // patch, dtype=torch.bool, device=pixel_values.device
            )
        else:
            grid = pixel_mask.unfold(1, patch, patch).unfold(2, patch, patch)
            patch_mask = grid.sum(dim=(-1, -2)) > 0
        x = self.embeddings(pixel_values, patch_mask)
        key_mask = patch_mask.view(batch, -1)
        key_mask = None if bool(key_mask.all()) else key_mask
        for layer in self.encoder.layers:
            x = layer(x, key_mask)
        return self.post_layernorm(x)
