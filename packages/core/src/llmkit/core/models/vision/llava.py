"""LLaVA: a CLIP or SigLIP tower's hidden states -> a two-layer MLP projector -> image embeddings in a Llama
prompt. Same interface as `Idefics3Model`, so `VisionLanguagePretrained` drives either."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InvalidParameterError
from ..llama import LlamaModel
from .clip import ClipVisionTower
from .decoder import ImageTokenDecoder
from .llava_config import LlavaConfig
from .siglip import vision_activation


class LlavaProjector(nn.Module):
    """linear_1 -> activation -> linear_2 (transformers' `LlavaMultiModalProjector`; llama.cpp's mm.0 / mm.2)."""

    def __init__(self, config: LlavaConfig):
        super().__init__()
        width = config.vision.hidden_size * len(config.feature_layers)
        self.linear_1 = nn.Linear(width, config.text.hidden_size, bias=config.projector_bias)
        self.linear_2 = nn.Linear(config.text.hidden_size, config.text.hidden_size, bias=config.projector_bias)
        self.activation = config.projector_act

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(vision_activation(self.linear_1(features), self.activation))


class LlavaModel(ImageTokenDecoder):
    """The tower (`vision_tower`), the projector (`multi_modal_projector`) and core's `LlamaModel` (`text_model`)."""

    def __init__(
        self, config: LlavaConfig, text_model: LlamaModel | nn.Module | None = None, *, post_layernorm: bool = True
    ):
        super().__init__()
        self.config = config
        self.vision_tower = ClipVisionTower(
            config.vision, class_token=config.class_token, post_layernorm=post_layernorm or config.post_norm_last
        )
        self.multi_modal_projector = LlavaProjector(config)
        self.text_model = text_model if text_model is not None else LlamaModel(config.text)

    def select_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, image_seq_len, vision hidden x feature layers]: the chosen hidden states, first token dropped or not."""
        config = self.config
        states = self.vision_tower.hidden_states(pixel_values, config.feature_layers, config.post_norm_last)
        if config.drop_first_token:
            states = [state[:, 1:] for state in states]
        return torch.cat(states, dim=-1)

    def image_features(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images [B, C, S, S] -> image embeddings [B, image_seq_len, text hidden]. A LLaVA image is never padded:
        a pixel mask, when given, must be all True."""
        if pixel_mask is not None and not bool(pixel_mask.all()):
            raise InvalidParameterError("LLaVA takes whole images; a pixel mask with padding cannot be honoured")
        weight = self.vision_tower.embeddings.position_embedding.weight  # dense even when the linears are stored
        return self.multi_modal_projector(self.select_features(pixel_values.to(weight.device, weight.dtype)))
