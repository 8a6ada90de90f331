"""The engine's default matmul inputs for the layers a model keeps as stored (GGUF blocks, quantized at load).

On the CPU: "int8", llama.cpp's Q8 activations. Measured choice (docs/benchmarks.md, "Inference next to
llama.cpp"): on 2 threads int8 decodes 1.95x faster at batch 1 and 1.67x at batch 8 than float32, prefills
at the same speed, and follows the float32 reference's greedy ids on 136 of 160 tokens (llama.cpp: 118 of
160). Elsewhere: "float32" (the CUDA kernels dequantize the weights in registers and take float
activations; they refuse int8 ones). An explicit `activations=` is the caller's and is never changed.
"""

from __future__ import annotations

import torch
from torch import nn

from llmkit.core.models.quantized import set_activations

DEFAULT_ACTIVATIONS = "int8"  # on the CPU


def default_activations(device: torch.device | str) -> str:
    return DEFAULT_ACTIVATIONS if torch.device(device).type == "cpu" else "float32"


def apply_default_activations(model: nn.Module) -> None:
    """Set the default activations of the model's device (`model.device`: llmkit's language and
    vision-language models have one) on its layers kept as stored."""
    set_activations(model, default_activations(model.device))
