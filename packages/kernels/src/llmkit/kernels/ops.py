"""Native ops with the call signatures of their references in llmkit.core.ops.

Each wrapper unpacks `PagedKVCache`, allocates outputs with torch, and hands the tensors to `_C`, which
borrows them through torch's C DLPack exporter, checks every argument and raises ValueError/TypeError
naming the one that is wrong.
"""

from __future__ import annotations

import torch

from llmkit.core import ops as core_ops
from llmkit.core.ops import PagedKVCache
from llmkit.core.quant import QuantizedWeight

from . import _C
from .fused_forward import paged_forward
from .packed import packed_for_int8 as _packed_for_int8

_BLOCK_FORMATS = ("fp8_e4m3", "int8", "int4")
_STORAGE_DTYPES = {"fp8_e4m3": torch.uint8, "int8": torch.int8, "int4": torch.uint8}


def _launch(tensor: torch.Tensor) -> dict[str, int]:
    """Threads for CPU kernels (`llmkit.core.ops.native_threads`) or the current CUDA stream for CUDA kernels."""
    if isinstance(tensor, torch.Tensor) and tensor.device.type == "cuda":
        return {"num_threads": 1, "stream": torch.cuda.current_stream(tensor.device).cuda_stream}
    return {"num_threads": core_ops.native_threads(), "stream": 0}


def _cache_args(cache: PagedKVCache) -> tuple:
    return (
        cache.kv_dtype,
        cache.key,
        cache.value,
        cache.key_scales,
        cache.value_scales,
    )


def _block_format(kv_dtype: str) -> str:
    if kv_dtype not in _BLOCK_FORMATS:
        raise ValueError(f"kv_dtype must be one of {', '.join(_BLOCK_FORMATS)}, got {kv_dtype!r}")
    return kv_dtype


def _four_dims(name: str, tensor: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 4:
        raise ValueError(
            f"{name} must have 4 dimensions [num_blocks, heads, block_size, head_dim], got shape {tuple(tensor.shape)}"
        )


def reshape_and_cache(key: torch.Tensor, value: torch.Tensor, cache: PagedKVCache, slot_mapping: torch.Tensor) -> None:
    """Write key/value [N, H, D] into their slots, quantizing on the way; a negative slot is skipped."""
    _C.reshape_and_cache(key, value, *_cache_args(cache), slot_mapping, **_launch(key))


def quantize_kv(x: torch.Tensor, kv_dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole blocks x [num_blocks, H, block_size, D] -> (storage, scales)."""
    _block_format(kv_dtype)
    _four_dims("x", x)
    blocks, heads, block_size, head_dim = x.shape
    if kv_dtype == "int4":
        storage = torch.empty(blocks, heads, block_size, head_dim // 2, dtype=torch.uint8, device=x.device)
        scales = torch.empty(blocks, heads, block_size, head_dim // 32, dtype=torch.float16, device=x.device)
    else:
        storage = torch.empty(x.shape, dtype=_STORAGE_DTYPES[kv_dtype], device=x.device)
        scales = torch.empty(blocks, heads, dtype=torch.float32, device=x.device)
    _C.quantize_kv(x, storage, scales, kv_dtype, **_launch(x))
    return storage, scales


def dequantize_kv(q: torch.Tensor, scales: torch.Tensor, kv_dtype: str) -> torch.Tensor:
    """float32 blocks [num_blocks, H, block_size, D] from storage and scales."""
    _block_format(kv_dtype)
    _four_dims("q", q)
    shape = (*q.shape[:3], q.shape[3] * 2) if kv_dtype == "int4" else q.shape
    out = torch.empty(shape, dtype=torch.float32, device=q.device)
    _C.dequantize_kv(q, scales, out, kv_dtype, **_launch(q))
    return out


def paged_attention_decode(
    out: torch.Tensor,
    query: torch.Tensor,
    cache: PagedKVCache,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    *,
    split: bool | None = None,
) -> None:
    """out[b] = softmax(scale * q[b] K_b^T) V_b; `split` forces (True) or forbids (False) split-K."""
    _C.paged_attention_decode(
        out,
        query,
        *_cache_args(cache),
        block_tables,
        seq_lens,
        float(scale),
        split=-1 if split is None else int(split),
        **_launch(query),
    )


def paged_attention_prefill(
    out: torch.Tensor,
    query: torch.Tensor,
    cache: PagedKVCache,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    query_start_loc: torch.Tensor,
    scale: float,
) -> None:
    """Variable-length causal attention of each sequence's new tokens over its cache (prefix included)."""
    _C.paged_attention_prefill(
        out,
        query,
        *_cache_args(cache),
        block_tables,
        seq_lens,
        query_start_loc,
        float(scale),
        **_launch(query),
    )


def apply_token_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor, indices: torch.Tensor | None = None) -> None:
    """Set logits whose bit is 0 to -inf in place (bit j of word w allows token 32 * w + j)."""
    _C.apply_token_bitmask(logits, bitmask, indices, **_launch(logits))


def quantized_matmul(
    x: torch.Tensor, weight: QuantizedWeight, bias: torch.Tensor | None = None, activations: str = "float32"
) -> torch.Tensor:
    """float32 [N, rows] = x [N, cols] @ weight.dequantize().T (+ bias): the stored blocks are decoded in
    the kernel, never into a float32 copy of the weight. int8 activations on Q8_0/Q4_0/Q4_1 weights run
    on the weight's repacked copy (`packed.packed_for_int8`); they are a CPU option (ValueError for x on a GPU)."""
    if x.dim() != 2 or x.shape[1] != weight.cols or not x.is_floating_point():
        raise ValueError(
            f"x must be a float [N, {weight.cols}] tensor for a {weight.rows}x{weight.cols} "
            f"{weight.format.name} weight, got {x.dtype} {tuple(x.shape)}"
        )
    x = x.to(torch.float32)
    if x.stride(-1) != 1:
        x = x.contiguous()
    out = torch.empty(x.shape[0], weight.rows, dtype=torch.float32, device=x.device)
    if bias is not None:
        bias = bias.to(torch.float32).contiguous()
    if activations not in ("float32", "int8"):
        raise ValueError(f"activations must be float32 or int8, got {activations!r}")
    if activations == "int8" and x.device.type != "cpu":
        raise ValueError(f"int8 activations run on the CPU only; x is on {x.device}: use activations='float32' there")
    launch = _launch(x)
    packed = _packed_for_int8(weight) if activations == "int8" and x.device.type == "cpu" else None
    if packed is not None:
        packed.matmul(out, x, bias, launch["num_threads"])
        return out
    _C.quant_matmul(
        out,
        x,
        weight.data,
        weight.format.name,
        weight.cols,
        bias,
        launch["num_threads"],
        activations == "int8",
        launch["stream"],
    )
    return out


def dequantize_rows(weight: QuantizedWeight, ids: torch.Tensor) -> torch.Tensor:
    """float32 [len(ids), cols]: rows `ids` of a stored weight (an embedding lookup)."""
    ids = ids.to(torch.int64).contiguous()
    out = torch.empty(ids.shape[0], weight.cols, dtype=torch.float32, device=weight.data.device)
    _C.dequantize_rows(out, weight.data, weight.format.name, weight.cols, ids)
    return out


NATIVE_OPS = {
    "paged_forward": paged_forward,
    "quantized_matmul": quantized_matmul,
    "dequantize_rows": dequantize_rows,
    "reshape_and_cache": reshape_and_cache,
    "quantize_kv": quantize_kv,
    "dequantize_kv": dequantize_kv,
    "paged_attention_decode": paged_attention_decode,
    "paged_attention_prefill": paged_attention_prefill,
    "apply_token_bitmask_": apply_token_bitmask_,
}
