"""Weights kept in their stored block formats (GGUF): formats, the reference dequantize, quantizers."""

from __future__ import annotations

from .formats import FORMATS, WeightFormat, format_of_ggml, row_bytes, weight_format
from .quantize import quantize
from .reference import dequantize, dequantize_rows
from .weight import QuantizedWeight

__all__ = [
    "FORMATS",
    "QuantizedWeight",
    "WeightFormat",
    "dequantize",
    "dequantize_rows",
    "format_of_ggml",
    "quantize",
    "row_bytes",
    "weight_format",
]
