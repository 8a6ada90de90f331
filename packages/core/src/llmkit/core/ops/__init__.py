"""Ops with a pure-torch reference (the specification) and faster registered implementations.

Callers use these functions; each dispatches on the device of its first tensor argument to
the highest-priority kernel registered for that device (see `dispatch`), or the reference.
"""

from __future__ import annotations

import torch

from ..quant.weight import QuantizedWeight
from . import kv_quant, paged_attention, paged_step, quantized, token_bitmask
from .dispatch import forced_reference, implementation, kernels, reference, register_reference
from .kv_layout import KV_DTYPES, PagedKVCache, allocate, bytes_per_token
from .paged_step import PagedAttention, PagedStep, describe_forward, forward_is_native
from .paged_step import dispatch_paged_forward as paged_forward
from .threads import native_step, native_threads

for _name, _function in {
    "reshape_and_cache": kv_quant.reshape_and_cache,
    "quantize_kv": kv_quant.quantize_kv,
    "dequantize_kv": kv_quant.dequantize_kv,
    "paged_attention_decode": paged_attention.paged_attention_decode,
    "paged_attention_prefill": paged_attention.paged_attention_prefill,
    "apply_token_bitmask_": token_bitmask.apply_token_bitmask_,
    "quantized_matmul": quantized.quantized_matmul,
    "dequantize_rows": quantized.dequantize_rows,
    "paged_forward": paged_step.paged_forward,
}.items():
    register_reference(_name, _function)


def reshape_and_cache(key: torch.Tensor, value: torch.Tensor, cache: PagedKVCache, slot_mapping: torch.Tensor) -> None:
    implementation("reshape_and_cache", key.device.type)(key, value, cache, slot_mapping)


def quantize_kv(x: torch.Tensor, kv_dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    return implementation("quantize_kv", x.device.type)(x, kv_dtype)


def dequantize_kv(q: torch.Tensor, scales: torch.Tensor, kv_dtype: str) -> torch.Tensor:
    return implementation("dequantize_kv", q.device.type)(q, scales, kv_dtype)


def paged_attention_decode(
    out: torch.Tensor,
    query: torch.Tensor,
    cache: PagedKVCache,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
) -> None:
    implementation("paged_attention_decode", query.device.type)(out, query, cache, block_tables, seq_lens, scale)


def paged_attention_prefill(
    out: torch.Tensor,
    query: torch.Tensor,
    cache: PagedKVCache,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    query_start_loc: torch.Tensor,
    scale: float,
) -> None:
    implementation("paged_attention_prefill", query.device.type)(
        out, query, cache, block_tables, seq_lens, query_start_loc, scale
    )


def apply_token_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor, indices: torch.Tensor | None = None) -> None:
    implementation("apply_token_bitmask_", logits.device.type)(logits, bitmask, indices)


def quantized_matmul(
    x: torch.Tensor, weight: QuantizedWeight, bias: torch.Tensor | None = None, activations: str = "float32"
) -> torch.Tensor:
    """float32 x @ W^T (+ bias) over a stored weight; see `quantized.quantized_matmul`."""
    return implementation("quantized_matmul", x.device.type)(x, weight, bias, activations)


def dequantize_rows(weight: QuantizedWeight, ids: torch.Tensor) -> torch.Tensor:
    return implementation("dequantize_rows", weight.data.device.type)(weight, ids)


__all__ = [
    "KV_DTYPES",
    "PagedAttention",
    "PagedKVCache",
    "PagedStep",
    "allocate",
    "apply_token_bitmask_",
    "bytes_per_token",
    "dequantize_kv",
    "dequantize_rows",
    "describe_forward",
    "forced_reference",
    "forward_is_native",
    "implementation",
    "kernels",
    "native_step",
    "native_threads",
    "paged_attention_decode",
    "paged_attention_prefill",
    "paged_forward",
    "quantize_kv",
    "quantized_matmul",
    "reference",
    "reshape_and_cache",
]
