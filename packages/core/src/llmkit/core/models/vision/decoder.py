"""What every vision-language model here shares: image embeddings over placeholder tokens, then the Llama decoder."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InvalidParameterError
from ..attention import AttentionContext
from .prompt import MultimodalPrompt


class ImageTokenDecoder(nn.Module):
    """Base of `Idefics3Model` and `LlavaModel`: `text_model` is core's `LlamaModel`; `config.image_token_id` is
    the placeholder token the image spans must cover."""

    text_model: nn.Module

    @property
    def device(self) -> torch.device:
        return self.text_model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.text_model.dtype

    def input_embeddings(self, prompt: MultimodalPrompt) -> torch.Tensor:
        """[N, hidden]: token embeddings, image spans in place of their placeholder tokens (checked to be them)."""
        image_token = self.config.image_token_id
        for span in prompt.spans:
            if any(token != image_token for token in prompt.token_ids[span.start : span.end]):
                raise InvalidParameterError(
                    f"image span {span.start}..{span.end} covers tokens other than the image token {image_token}"
                )
        if prompt.token_ids.count(image_token) != prompt.num_image_tokens:
            raise InvalidParameterError(
                f"the prompt holds {prompt.token_ids.count(image_token)} image tokens but its spans fill "
                f"{prompt.num_image_tokens}"
            )
        return prompt.input_embeddings(self.text_model.embed_tokens, self.device).to(self.dtype)

    def forward(self, embeddings: torch.Tensor, positions: torch.Tensor, attention: AttentionContext) -> torch.Tensor:
        """The Llama decoder over input embeddings [N, hidden] (flattened like `LlamaModel.forward`)."""
        text = self.text_model
        cos, sin = text.rotary(positions, embeddings.dtype)
        x = embeddings
        for layer in text.layers:
            x = layer(x, cos, sin, attention)
        return text.norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.text_model.compute_logits(hidden)
