"""Idefics3 / SmolVLM: SigLIP tiles -> pixel shuffle + linear projection -> image embeddings in a Llama prompt."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InvalidParameterError
from ..llama import LlamaModel
from .config import Idefics3Config
from .decoder import ImageTokenDecoder
from .siglip import SiglipVisionTower


class ModalityProjection(nn.Module):
    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        self.proj = nn.Linear(input_size, output_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Idefics3Connector(nn.Module):
    """Pixel shuffle (scale_factor^2 neighbouring patches -> one token) then a linear map to the text width."""

    def __init__(self, config: Idefics3Config):
        super().__init__()
        self.scale_factor = config.scale_factor
        width = config.vision.hidden_size * config.scale_factor**2
        self.modality_projection = ModalityProjection(width, config.text.hidden_size)

    def pixel_shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """[B, side*side, D] -> [B, side*side / s^2, D * s^2], grouping s x s patch neighbourhoods (transformers' order)."""
        batch, seq, dim = x.shape
        side, s = int(seq**0.5), self.scale_factor
        if side * side != seq:
            raise InvalidParameterError(f"pixel shuffle needs a square patch grid, got {seq} patches")
        x = x.view(batch, side, side // s, dim * s).permute(0, 2, 1, 3)
        x = x.reshape(batch, side // s, side // s, dim * s * s).permute(0, 2, 1, 3)
        return x.reshape(batch, seq // (s * s), dim * s * s)

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        return self.modality_projection(self.pixel_shuffle(patch_features))


class Idefics3Model(ImageTokenDecoder):
    """The vision tower, the connector and core's `LlamaModel` (`text_model`), with HF's parameter names."""

    def __init__(self, config: Idefics3Config, text_model: LlamaModel | None = None):
        super().__init__()
        self.config = config
        self.vision_model = SiglipVisionTower(config.vision)
        self.connector = Idefics3Connector(config)
        self.text_model = text_model if text_model is not None else LlamaModel(config.text)

    def image_features(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tiles [T, C, H, W] (pixel mask [T, H, W]) -> image embeddings [T, image_seq_len, text hidden]."""
        vision_dtype = self.vision_model.embeddings.position_embedding.weight.dtype  # dense even when stored
        pixel_values = pixel_values.to(self.device, vision_dtype)
        if pixel_mask is not None:
            pixel_mask = pixel_mask.to(self.device)
        return self.connector(self.vision_model(pixel_values, pixel_mask))
