"""The vision tower's and projector's linear layers on the language model's path for weights kept as stored:
each `nn.Linear` becomes a `QuantizedLinear` (the matmul is `ops.quantized_matmul`, native where the kernels
are installed) over its weight as the checkpoint holds it — an mmproj GGUF's F16/Q8_0/... blocks, a
safetensors float tensor without a copy — or quantized at load. The patch embedding (a convolution), the
position embeddings and the norms stay dense float32."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ...quant import QuantizedWeight, quantize, weight_format
from ..quantized import QuantizedLinear, as_stored

logger = logging.getLogger(__name__)
# Formats narrower than 8 bits a weight: the vision side takes q8_0 instead. On a SigLIP-base tower with random
# weights (benchmarks/vision_tower.py) q4_0 puts the image embeddings 27% (rms) from float32, q8_0 1.7%.
_NARROW_FORMATS = frozenset({"q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"})
VISION_NARROW_FALLBACK = "q8_0"


def vision_format(quantize_to: str | None, vision_quantize: str | None = None) -> str | None:
    """The format the vision tower and projector quantize to: `vision_quantize` when given, else the language
    model's `quantize_to`, or q8_0 in place of a format narrower than 8 bits (logged)."""
    if vision_quantize is not None or quantize_to is None:
        return vision_quantize
    if quantize_to.strip().lower() not in _NARROW_FORMATS:
        return quantize_to
    logger.warning(
        "quantize=%s: the vision tower and projector quantize to %s (a narrower tower moves the image embeddings "
        "far from float32's: docs/multimodal.md; vision_quantize= overrides)",
        quantize_to,
        VISION_NARROW_FALLBACK,
    )
    return VISION_NARROW_FALLBACK


def store_vision_linears(
    model: nn.Module,
    tensors: dict[str, torch.Tensor | QuantizedWeight],
    *,
    quantize_to: str | None,
    activations: str,
    device: str | torch.device,
) -> dict[str, torch.Tensor]:
    """Replace every `nn.Linear` of `model` outside `text_model` by a `QuantizedLinear` over its weight in
    `tensors`; returns the tensors left for `load_state_dict` (those layers' weights and biases taken out).

    `quantize_to` quantizes float weights (stored GGUF blocks stay as they are, as in the language model); a
    weight whose columns are not whole blocks of that format stays float, logged."""
    remaining = dict(tensors)
    kept_float: list[str] = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name.startswith("text_model."):
            continue
        weight = remaining.pop(f"{name}.weight", None)
        if weight is None:
            continue  # left on meta: the loader's missing-tensor check names it
        bias = remaining.pop(f"{name}.bias", None)
        if not isinstance(weight, QuantizedWeight):
            if quantize_to is not None and weight.shape[1] % weight_format(quantize_to).block_elems == 0:
                weight = quantize(weight.float(), quantize_to)
            else:
                if quantize_to is not None:
                    kept_float.append(name)
                weight = as_stored(weight)
        bias = None if bias is None else bias.to(device=device, dtype=torch.float32)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, QuantizedLinear(weight.to(device), bias, activations))
    if kept_float:
        logger.warning(
            "%d vision linear layer(s) have a width that is not whole %s blocks and stay as stored floats: %s",
            len(kept_float),
            quantize_to,
            ", ".join(kept_float),
        )
    return remaining
