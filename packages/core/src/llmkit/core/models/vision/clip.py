"""The vision tower of LLaVA-style models: CLIP (class token, pre-layernorm, quick GELU) or SigLIP (patch bias).

The encoder layers are SigLIP's (`siglip.VisionEncoderLayer`: pre-norm attention and MLP), which CLIP shares.
Parameter names follow transformers' `CLIPVisionTransformer` / `SiglipVisionTransformer`."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InvalidParameterError
from .config import VisionConfig
from .siglip import VisionEncoder


class ClipVisionEmbeddings(nn.Module):
    """Patch conv, an optional class token in front, learned positions on the fixed grid."""

    def __init__(self, config: VisionConfig, class_token: bool):
        super().__init__()
        self.patch_embedding = nn.Conv2d(
            config.num_channels,
            config.hidden_size,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            bias=not class_token,  # CLIP's conv has no bias, SigLIP's has
        )
        self.class_embedding = nn.Parameter(torch.empty(config.hidden_size)) if class_token else None
        positions = config.patches_per_side**2 + int(class_token)
        self.position_embedding = nn.Embedding(positions, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        if self.class_embedding is not None:
            x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
        return x + self.position_embedding.weight[: x.shape[1]]


class ClipVisionTower(nn.Module):
    """Images [B, C, S, S] -> the hidden states LLaVA asks for (see `hidden_states`)."""

    def __init__(self, config: VisionConfig, *, class_token: bool, post_layernorm: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = ClipVisionEmbeddings(config, class_token)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if class_token else None
        self.encoder = VisionEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if post_layernorm else None

    def hidden_states(
        self, pixel_values: torch.Tensor, layers: tuple[int, ...], post_norm_last: bool = False
    ) -> list[torch.Tensor]:
        """[B, positions, hidden] for each index in `layers` (0 = embeddings after the pre-norm, k = output of
        layer k); only layers up to the deepest asked for run. `post_norm_last`: the deepest gets the post norm."""
        size = self.config.image_size
        if pixel_values.shape[-2:] != (size, size):
            raise InvalidParameterError(
                f"the vision tower takes {size}x{size} images, got {tuple(pixel_values.shape[-2:])}"
            )
        x = self.embeddings(pixel_values)
        if self.pre_layrnorm is not None:
            x = self.pre_layrnorm(x)
        deepest = max(layers)
        states = {0: x}
        for index, layer in enumerate(self.encoder.layers[:deepest]):
            x = layer(x, None)
            states[index + 1] = x
        if post_norm_last:
            if self.post_layernorm is None:
                raise InvalidParameterError("the tower has no post layernorm to apply")
            states[deepest] = self.post_layernorm(states[deepest])
        return [states[index] for index in layers]
