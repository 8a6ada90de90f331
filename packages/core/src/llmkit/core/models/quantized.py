"""Layers over weights kept as stored (GGUF blocks, or bf16/fp16/fp32 bytes): the matmul decodes the
blocks on the fly (`llmkit.core.ops.quantized_matmul`), so no float copy of the weight ever exists.

`as_stored(tensor)` wraps a dense float tensor without copying, so one code path (and one native
forward) serves quantized and dense checkpoints alike.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..quant import FORMATS, QuantizedWeight

_DENSE_FORMATS = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def as_stored(tensor: torch.Tensor) -> QuantizedWeight:
    """A dense [rows, cols] float32/float16/bfloat16 tensor as a `QuantizedWeight` over the same memory."""
    if tensor.dtype not in _DENSE_FORMATS or tensor.dim() != 2:
        raise ValueError(
            f"as_stored takes a 2-D float32/float16/bfloat16 tensor, got {tensor.dtype} {tuple(tensor.shape)}"
        )
    rows, cols = tensor.shape
    data = tensor.detach().contiguous().view(torch.uint8).view(rows, -1)
    return QuantizedWeight(data, FORMATS[_DENSE_FORMATS[tensor.dtype]], rows, cols)


class QuantizedLinear(nn.Module):
    """`nn.Linear` whose weight stays stored; float32 in and out. `activations="int8"` rounds the input
    to int8 per 32 columns first (Q8_0/Q4_0/Q4_1 weights; see `ops.quantized.quantize_activations_int8`)."""

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None, activations: str = "float32"):
        super().__init__()
        self.stored, self.activations = weight, activations
        self.in_features, self.out_features = weight.cols, weight.rows
        self.register_buffer("stored_bytes", weight.data, persistent=False)  # moves with .to(); never trained
        self.bias = None if bias is None else nn.Parameter(bias.to(torch.float32), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = ops.quantized_matmul(flat, self.stored, self.bias, self.activations)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, format={self.stored.format.name}"


class QuantizedEmbedding(nn.Module):
    """`nn.Embedding` whose table stays stored; a lookup decodes only the rows it reads."""

    def __init__(self, weight: QuantizedWeight, activations: str = "float32"):
        super().__init__()
        self.stored, self.activations = weight, activations  # activations: of the tied LM head
        self.num_embeddings, self.embedding_dim = weight.rows, weight.cols
        self.register_buffer("stored_bytes", weight.data, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = ops.dequantize_rows(self.stored, ids.reshape(-1))
        return rows.reshape(*ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, format={self.stored.format.name}"


def set_activations(model: nn.Module, activations: str) -> None:
    """Switch every stored layer of `model` to float32 or int8 activations."""
    from ..ops.quantized import ACTIVATIONS

    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {', '.join(ACTIVATIONS)}, got {activations!r}")
    for module in model.modules():
        if isinstance(module, QuantizedLinear | QuantizedEmbedding):
            module.activations = activations
