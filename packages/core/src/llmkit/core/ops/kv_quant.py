"""Reference KV quantization (the specification native kernels match bit for bit).

See `kv_layout` for the formats. `quantize_kv`/`dequantize_kv` work on whole blocks
[num_blocks, num_kv_heads, block_size, head_dim]; `reshape_and_cache` writes new tokens.
"""

from __future__ import annotations

import torch

from ..errors import InvalidParameterError
from .kv_layout import FP8_MAX, INT4_GROUP, INT4_MAX, INT8_MAX, PagedKVCache, check_kv_dtype


def _safe_div(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x / scale, and 0 where the scale is 0 (an all-zero block or group)."""
    return torch.where(scale > 0, x / torch.where(scale > 0, scale, 1.0), 0.0)


def quantize_values(x: torch.Tensor, scale: torch.Tensor, kv_dtype: str) -> torch.Tensor:
    """Quantize float32 `x` with a broadcastable float32 `scale` into the storage dtype (int4 unpacked)."""
    y = _safe_div(x, scale)
    if kv_dtype == "fp8_e4m3":
        return y.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).view(torch.uint8)
    if kv_dtype == "int8":
        return y.round().clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return y.round().clamp(-INT4_MAX, INT4_MAX).to(torch.int8)  # int4, unpacked


def dequantize_values(q: torch.Tensor, scale: torch.Tensor, kv_dtype: str) -> torch.Tensor:
    """float32 values of storage `q` (int4 unpacked) times a broadcastable scale."""
    if kv_dtype == "fp8_e4m3":
        return q.view(torch.float8_e4m3fn).to(torch.float32) * scale
    return q.to(torch.float32) * scale


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """int8 values in [-8, 7], last dim even -> uint8 with two offset-binary nibbles per byte."""
    u = (q.to(torch.int16) + 8).to(torch.uint8)
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack((low, high), dim=-1).flatten(-2)


def _group_scales(x: torch.Tensor) -> torch.Tensor:
    """float16 int4 scales per group of 32 along the last dim, as float32 [..., D/32, 1]."""
    groups = x.unflatten(-1, (-1, INT4_GROUP))
    return (groups.abs().amax(-1, keepdim=True) / INT4_MAX).to(torch.float16).to(torch.float32)


def _check_quantized(kv_dtype: str) -> None:
    check_kv_dtype(kv_dtype)
    if kv_dtype == "auto":
        raise InvalidParameterError("kv_dtype 'auto' is not a quantized format; use fp8_e4m3, int8 or int4")


def quantize_kv(x: torch.Tensor, kv_dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize whole blocks x [num_blocks, H, block_size, D] -> (storage, scales)."""
    _check_quantized(kv_dtype)
    x = x.to(torch.float32)
    if kv_dtype == "int4":
        scales = _group_scales(x)
        q = quantize_values(x.unflatten(-1, (-1, INT4_GROUP)), scales, "int4").flatten(-2)
        return pack_int4(q), scales.squeeze(-1).to(torch.float16)
    qmax = FP8_MAX if kv_dtype == "fp8_e4m3" else INT8_MAX
    scales = x.abs().amax(dim=(-2, -1)) / qmax
    return quantize_values(x, scales[..., None, None], kv_dtype), scales


def dequantize_kv(q: torch.Tensor, scales: torch.Tensor, kv_dtype: str) -> torch.Tensor:
    """float32 blocks [num_blocks, H, block_size, D] from storage and scales."""
    _check_quantized(kv_dtype)
    if kv_dtype == "int4":
        values = unpack_int4(q).unflatten(-1, (-1, INT4_GROUP))
        return dequantize_values(values, scales.to(torch.float32)[..., None], "int4").flatten(-2)
    return dequantize_values(q, scales[..., None, None], kv_dtype)


def gather_blocks(cache: PagedKVCache, blocks: torch.Tensor, which: str) -> torch.Tensor:
    """float32 (dequantized) blocks `blocks` [...] of K or V -> [..., H, block_size, D]."""
    storage = cache.key if which == "key" else cache.value
    if cache.kv_dtype == "auto":
        return storage[blocks].to(torch.float32)
    scales = cache.key_scales if which == "key" else cache.value_scales
    return dequantize_kv(storage[blocks], scales[blocks], cache.kv_dtype)


def reshape_and_cache(key: torch.Tensor, value: torch.Tensor, cache: PagedKVCache, slot_mapping: torch.Tensor) -> None:
    """Write new tokens key/value [N, H, D] into their slots (quantizing on the way); slot -1 is skipped."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].to(torch.int64)
    if slots.numel() == 0:
        return
    blocks, offsets = slots // cache.block_size, slots % cache.block_size
    for new, storage, scales in (
        (key[keep], cache.key, cache.key_scales),
        (value[keep], cache.value, cache.value_scales),
    ):
        if cache.kv_dtype == "auto":
            storage[blocks, :, offsets] = new.to(storage.dtype)
        elif cache.kv_dtype == "int4":
            x = new.to(torch.float32)
            group_scales = _group_scales(x)
            q = quantize_values(x.unflatten(-1, (-1, INT4_GROUP)), group_scales, "int4").flatten(-2)
            storage[blocks, :, offsets] = pack_int4(q)
            scales[blocks, :, offsets] = group_scales.squeeze(-1).to(torch.float16)
        else:
            _write_block_scaled(new.to(torch.float32), storage, scales, blocks, offsets, cache.kv_dtype)


def _write_block_scaled(
    new: torch.Tensor,
    storage: torch.Tensor,
    scales: torch.Tensor,
    blocks: torch.Tensor,
    offsets: torch.Tensor,
    kv_dtype: str,
) -> None:
    """Per-(block, head) scales: raise each touched block's scale to cover the new tokens,
    re-quantize what the block already holds if its scale grew, then write the new tokens.
    A write at offset 0 starts the block afresh (blocks fill in order), so its old scale is dropped."""
    qmax = FP8_MAX if kv_dtype == "fp8_e4m3" else INT8_MAX
    touched = torch.unique(blocks)
    position = torch.searchsorted(touched, blocks)
    token_amax = new.abs().amax(dim=-1) / qmax  # [N, H]
    needed = torch.zeros(len(touched), new.shape[1], dtype=torch.float32, device=new.device)
    needed.scatter_reduce_(0, position[:, None].expand_as(token_amax), token_amax, "amax", include_self=True)
    restarted = torch.zeros(len(touched), dtype=torch.bool, device=new.device)
    restarted[position[offsets == 0]] = True
    old = torch.where(restarted[:, None], 0.0, scales[touched])
    grown = torch.maximum(old, needed)
    changed = grown > old  # [T, H]
    if bool(changed.any()):
        held = dequantize_values(storage[touched], old[..., None, None], kv_dtype)
        requantized = quantize_values(held, grown[..., None, None], kv_dtype)
        storage[touched] = torch.where(changed[..., None, None], requantized, storage[touched])
    scales[touched] = grown
    storage[blocks, :, offsets] = quantize_values(new, scales[blocks][..., None], kv_dtype)
