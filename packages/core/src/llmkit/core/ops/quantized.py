"""References of the ops over weights kept as stored (GGUF blocks): dequantize, then plain torch."""

from __future__ import annotations

import torch

from ..errors import InvalidParameterError
from ..quant import reference
from ..quant.weight import QuantizedWeight


def quantized_matmul(x: torch.Tensor, weight: QuantizedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """float32 [N, rows] = x [N, cols] @ weight.dequantize().T (+ bias [rows])."""
    if not isinstance(weight, QuantizedWeight):
        raise InvalidParameterError(f"quantized_matmul takes a QuantizedWeight, got {type(weight).__name__}")
    if x.dim() != 2 or x.shape[1] != weight.cols or not x.is_floating_point():
        raise InvalidParameterError(
            f"quantized_matmul: x must be a float [N, {weight.cols}] tensor for a {weight.rows}x{weight.cols} "
            f"{weight.format.name} weight, got {x.dtype} {tuple(x.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.rows,):
        raise InvalidParameterError(f"quantized_matmul: bias must be [{weight.rows}], got {tuple(bias.shape)}")
    out = x.float() @ weight.dequantize(torch.float32).T
    return out if bias is None else out + bias.float()


def dequantize_rows(weight: QuantizedWeight, ids: torch.Tensor) -> torch.Tensor:
    """float32 [len(ids), cols]: rows `ids` of `weight` (an embedding lookup)."""
    return reference.dequantize_rows(weight, ids)
