"""The logit lens: each layer's residual stream decoded through the final norm and the LM head."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ..models.llama import LlamaModel
from ..tokenizer import Tokenizer
from .capture import capture_activations


@torch.inference_mode()
def logit_lens(model: LlamaModel, prompt_ids: Sequence[int], positions="last") -> torch.Tensor:
    """Logits [num_layers + 1, num_positions, vocab]: row i decodes the residual entering layer i
    (row 0 the embedding, the last row the model's own output)."""
    keys = [(layer, "resid") for layer in range(model.config.num_layers + 1)]
    residuals = capture_activations(model, [list(prompt_ids)], keys, positions)
    stacked = torch.stack([residuals[key][0] for key in keys])  # [layers + 1, positions, hidden]
    layers, count, hidden = stacked.shape
    return model.compute_logits(model.norm(stacked.reshape(-1, hidden))).view(layers, count, -1)


@dataclasses.dataclass
class LensRow:
    layer: int
    tokens: list[str]
    probabilities: list[float]


def top_tokens_per_layer(
    model: LlamaModel, tokenizer: Tokenizer, prompt_ids: Sequence[int], top: int = 5, position: int = -1
) -> list[LensRow]:
    """The `top` most likely next tokens at one prompt position, decoded from every layer's residual."""
    probabilities = logit_lens(model, prompt_ids, [position])[:, 0].softmax(-1)
    values, ids = probabilities.topk(top, dim=-1)
    return [
        LensRow(layer, [tokenizer.decode([i], skip_special_tokens=False) for i in row_ids], row_values)
        for layer, (row_ids, row_values) in enumerate(zip(ids.tolist(), values.tolist(), strict=True))
    ]
