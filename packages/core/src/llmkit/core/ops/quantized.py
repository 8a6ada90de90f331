"""References of the ops over weights kept as stored (GGUF blocks): dequantize, then plain torch."""

from __future__ import annotations

import torch

from ..errors import InvalidParameterError
from ..quant import reference
from ..quant.weight import QuantizedWeight

ACTIVATIONS = ("float32", "int8")
INT8_FORMATS = frozenset({"q8_0", "q4_0", "q4_1"})


def quantize_activations_int8(x: torch.Tensor) -> torch.Tensor:
    """x [N, cols] as llama.cpp's Q8 activations see it: per 32 columns d = max|x| / 127 and
    q = round-half-even(x * (1 / d)) (0 where d = 0); returns d * q in float32."""
    n, cols = x.shape
    blocks = x.to(torch.float32).reshape(n, cols // 32, 32)
    d = blocks.abs().amax(-1, keepdim=True) / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    return (torch.round(blocks * inv) * d).reshape(n, cols)


def quantized_matmul(
    x: torch.Tensor, weight: QuantizedWeight, bias: torch.Tensor | None = None, activations: str = "float32"
) -> torch.Tensor:
    """float32 [N, rows] = x [N, cols] @ weight.dequantize().T (+ bias [rows]).

    `activations="int8"` first rounds x to int8 per 32 columns (`quantize_activations_int8`) for Q8_0,
    Q4_0 and Q4_1 weights -- the integer dot products of llama.cpp; other formats ignore it."""
    if activations not in ACTIVATIONS:
        raise InvalidParameterError(f"activations must be one of {', '.join(ACTIVATIONS)}, got {activations!r}")
    if not isinstance(weight, QuantizedWeight):
        raise InvalidParameterError(f"quantized_matmul takes a QuantizedWeight, got {type(weight).__name__}")
    if x.dim() != 2 or x.shape[1] != weight.cols or not x.is_floating_point():
        raise InvalidParameterError(
            f"quantized_matmul: x must be a float [N, {weight.cols}] tensor for a {weight.rows}x{weight.cols} "
            f"{weight.format.name} weight, got {x.dtype} {tuple(x.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.rows,):
        raise InvalidParameterError(f"quantized_matmul: bias must be [{weight.rows}], got {tuple(bias.shape)}")
    if activations == "int8" and weight.format.name in INT8_FORMATS:
        x = quantize_activations_int8(x)
    out = x.float() @ weight.dequantize(torch.float32).T
    return out if bias is None else out + bias.float()


def dequantize_rows(weight: QuantizedWeight, ids: torch.Tensor) -> torch.Tensor:
    """float32 [len(ids), cols]: rows `ids` of `weight` (an embedding lookup)."""
    return reference.dequantize_rows(weight, ids)
