"""The paged KV-cache layout and its storage formats, shared by references and native kernels.

Layout (one tensor for K, one for V): [num_blocks, num_kv_heads, block_size, head_dim].
Head-major inside a block so that one (sequence, kv head) reads block_size x head_dim
contiguous elements per block: the decode loop streams contiguous rows on CPU and
coalesces on GPU. A slot is `block * block_size + offset`; slot -1 means "do not write".

Formats (`kv_dtype`):
- "auto": the model dtype (float32, bfloat16, float16); no scales.
- "fp8_e4m3": uint8 storage holding float8 e4m3fn bits; one float32 scale per
  (block, kv head), q = clamp(x / scale, ±448) rounded to nearest even.
- "int8": int8 storage, symmetric; one float32 scale per (block, kv head),
  q = clamp(round(x / scale), ±127).
- "int4": uint8 storage, two values per byte (low nibble = even element), offset-binary
  (q + 8); one float16 scale per group of 32 elements of each token's head vector,
  q = clamp(round(x / scale), ±7).
Per-(block, head) scales grow as tokens arrive: when a write raises a block's scale, the
values already in that block are re-quantized to the new scale (dequantize, quantize).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..errors import InvalidParameterError

INT4_GROUP = 32
FP8_MAX = 448.0
INT8_MAX = 127.0
INT4_MAX = 7.0
KV_DTYPES = ("auto", "fp8_e4m3", "int8", "int4")


def check_kv_dtype(kv_dtype: str) -> str:
    if kv_dtype not in KV_DTYPES:
        raise InvalidParameterError(f"kv_dtype must be one of {', '.join(KV_DTYPES)}, got {kv_dtype!r}")
    return kv_dtype


@dataclasses.dataclass
class PagedKVCache:
    """The K and V block pools of one layer, plus their scales when quantized."""

    key: torch.Tensor
    value: torch.Tensor
    kv_dtype: str = "auto"
    key_scales: torch.Tensor | None = None
    value_scales: torch.Tensor | None = None

    @property
    def num_blocks(self) -> int:
        return self.key.shape[0]

    @property
    def block_size(self) -> int:
        return self.key.shape[2]


def storage_dtype(kv_dtype: str, model_dtype: torch.dtype) -> torch.dtype:
    return {"auto": model_dtype, "fp8_e4m3": torch.uint8, "int8": torch.int8, "int4": torch.uint8}[kv_dtype]


def bytes_per_token(num_kv_heads: int, head_dim: int, kv_dtype: str, model_dtype: torch.dtype) -> float:
    """K plus V bytes one token occupies in one layer (scales included)."""
    if kv_dtype == "auto":
        per_head = head_dim * torch.finfo(model_dtype).bits / 8
    elif kv_dtype == "int4":
        per_head = head_dim / 2 + 2 * head_dim / INT4_GROUP
    else:
        per_head = head_dim  # one byte per element; per-block scales are negligible
    return 2 * num_kv_heads * per_head


def allocate(
    num_blocks: int,
    num_kv_heads: int,
    block_size: int,
    head_dim: int,
    kv_dtype: str = "auto",
    model_dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> PagedKVCache:
    """Zeroed K/V pools (and scales) of one layer."""
    check_kv_dtype(kv_dtype)
    if kv_dtype == "int4" and head_dim % INT4_GROUP:
        raise InvalidParameterError(f"int4 KV cache needs head_dim divisible by {INT4_GROUP}, got {head_dim}")
    dim = head_dim // 2 if kv_dtype == "int4" else head_dim
    shape = (num_blocks, num_kv_heads, block_size, dim)
    dtype = storage_dtype(kv_dtype, model_dtype)
    key, value = lazy_zeros(shape, dtype, device), lazy_zeros(shape, dtype, device)
    if kv_dtype == "auto":
        return PagedKVCache(key, value)
    if kv_dtype == "int4":
        scale_shape, scale_dtype = (num_blocks, num_kv_heads, block_size, head_dim // INT4_GROUP), torch.float16
    else:
        scale_shape, scale_dtype = (num_blocks, num_kv_heads), torch.float32
    return PagedKVCache(
        key,
        value,
        kv_dtype,
        lazy_zeros(scale_shape, scale_dtype, device),
        lazy_zeros(scale_shape, scale_dtype, device),
    )


def lazy_zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Zeros whose CPU pages are only mapped when first written (calloc'd through numpy): a KV cache
    budget of gigabytes costs resident memory only for the blocks sequences actually fill."""
    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    count = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    return torch.from_numpy(np.zeros(count, dtype=np.uint8)).view(dtype).view(shape)
