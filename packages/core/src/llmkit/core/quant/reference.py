"""Dequantization of GGUF block formats in vectorized torch: the specification of the quantized kernels.

Bit layouts follow ggml (ggml-quants.c) and gguf-py's quants.py; every function here runs on CPU and
CUDA tensors alike and gives the same float32 values as gguf's numpy dequantize. Integer codes and
scales become float32 first, and the float operations happen in the same order as ggml's, so the
results are exact, not approximate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..errors import InvalidParameterError
from .formats import WeightFormat, row_bytes, weight_format

if TYPE_CHECKING:
    from .weight import QuantizedWeight

QK_K = 256  # elements of a K-quant super-block


def check_data(data: torch.Tensor, fmt: WeightFormat, cols: int) -> None:
    """Raise a clear error unless `data` is uint8 [rows, row_bytes(fmt, cols)]."""
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        found = data.dtype if isinstance(data, torch.Tensor) else type(data).__name__
        raise InvalidParameterError(f"{fmt.name} weight data must be a uint8 tensor of stored bytes, got {found}")
    if data.dim() != 2:
        raise InvalidParameterError(
            f"{fmt.name} weight data must be 2-D [rows, row_bytes], got shape {tuple(data.shape)}"
        )
    expected = row_bytes(fmt, cols)
    if data.shape[1] != expected:
        raise InvalidParameterError(
            f"{fmt.name} rows of {cols} columns take {expected} bytes, but the data has {data.shape[1]} bytes per row"
        )


def dequantize(data: torch.Tensor, fmt: WeightFormat | str, cols: int) -> torch.Tensor:
    """float32 [rows, cols] values of the stored rows `data` (uint8 [rows, row_bytes]) in format `fmt`."""
    if isinstance(fmt, str):
        fmt = weight_format(fmt)
    check_data(data, fmt, cols)
    rows = data.shape[0]
    if fmt.block_elems == 1:
        return _reinterpret(data, _FLOAT_DTYPES[fmt.name]).float().reshape(rows, cols)
    blocks = data.reshape(rows, cols // fmt.block_elems, fmt.block_bytes)
    return _BLOCK_DEQUANTIZERS[fmt.name](blocks).reshape(rows, cols)


def dequantize_rows(weight: QuantizedWeight, ids: torch.Tensor) -> torch.Tensor:
    """float32 [len(ids), cols]: only the rows `ids` of `weight` (an embedding lookup) are dequantized."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype not in (torch.int32, torch.int64):
        raise InvalidParameterError("dequantize_rows takes a 1-D int32/int64 tensor of row ids")
    rows = weight.data.index_select(0, ids.to(device=weight.data.device, dtype=torch.long))
    return dequantize(rows, weight.format, weight.cols)


_FLOAT_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def _reinterpret(raw: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The little-endian values stored in the last dimension of uint8 `raw` (copied when misaligned)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    if not raw.is_contiguous() or raw.storage_offset() % itemsize:
        raw = raw.clone(memory_format=torch.contiguous_format)
    return raw.view(dtype)


def _half(blocks: torch.Tensor, offset: int) -> torch.Tensor:
    """The f16 field at byte `offset` of each block as float32 [..., 1]."""
    return _reinterpret(blocks[..., offset : offset + 2], torch.float16).float()


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """[..., n] bytes -> [..., 2, n] codes: low nibbles first, then high nibbles."""
    return torch.stack((packed & 0x0F, packed >> 4), dim=-2)


def _bits(packed: torch.Tensor, count: int, width: int = 1) -> torch.Tensor:
    """[..., n] bytes -> [..., count, n]: field k holds bits k*width .. k*width+width-1 of each byte."""
    shifts = torch.arange(0, count * width, width, dtype=torch.uint8, device=packed.device)
    return (packed.unsqueeze(-2) >> shifts.unsqueeze(-1)) & ((1 << width) - 1)


def _q8_0(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; i8 qs[32]}
    return _reinterpret(blocks[..., 2:], torch.int8).float() * _half(blocks, 0)


def _q4_0(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; u8 qs[16]}: (q - 8) * d
    q = _nibbles(blocks[..., 2:]).flatten(-2)
    return _half(blocks, 0) * (q.float() - 8)


def _q4_1(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; f16 m; u8 qs[16]}: q * d + m
    q = _nibbles(blocks[..., 4:]).flatten(-2)
    return _half(blocks, 0) * q.float() + _half(blocks, 2)


def _five_bit(qh: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """Q5_0/Q5_1 codes: element j's fifth bit is bit j of the little-endian u32 `qh`."""
    high = _bits(qh, 8).transpose(-1, -2).flatten(-2)  # byte j // 8, bit j % 8
    return _nibbles(qs).flatten(-2) | (high << 4)


def _q5_0(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; u8 qh[4]; u8 qs[16]}: (q - 16) * d
    q = _five_bit(blocks[..., 2:6], blocks[..., 6:])
    return _half(blocks, 0) * (q.float() - 16)


def _q5_1(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: q * d + m
    q = _five_bit(blocks[..., 4:8], blocks[..., 8:])
    return _half(blocks, 0) * q.float() + _half(blocks, 2)


def k_scales_and_mins(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: 12 bytes -> the 8 sub-block scales and mins (6 bits each), as uint8 [..., 8]."""
    low, mid, high = packed[..., 0:4], packed[..., 4:8], packed[..., 8:12]
    scales = torch.cat((low & 0x3F, (high & 0x0F) | ((low >> 2) & 0x30)), dim=-1)
    mins = torch.cat((mid & 0x3F, (high >> 4) | ((mid >> 2) & 0x30)), dim=-1)
    return scales, mins


def _k_affine(blocks: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """d * scale_j * q - dmin * min_j over the 8 sub-blocks [..., 8, 32] of a Q4_K/Q5_K super-block."""
    scales, mins = k_scales_and_mins(blocks[..., 4:16])
    d = (_half(blocks, 0) * scales.float()).unsqueeze(-1)
    dm = (_half(blocks, 2) * mins.float()).unsqueeze(-1)
    return (d * q.float() - dm).flatten(-2)


def _q4_k(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
    # 32 bytes of qs hold sub-block 2i (low nibbles) and 2i + 1 (high nibbles)
    qs = blocks[..., 16:144].unflatten(-1, (4, 32))
    return _k_affine(blocks, _nibbles(qs).flatten(-3, -2))


def _q5_k(blocks: torch.Tensor) -> torch.Tensor:  # {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
    qs = blocks[..., 48:176].unflatten(-1, (4, 32))
    high = _bits(blocks[..., 16:48], 8)  # sub-block j's fifth bits: bit j of qh
    return _k_affine(blocks, _nibbles(qs).flatten(-3, -2) | (high << 4))


def _q6_k(blocks: torch.Tensor) -> torch.Tensor:  # {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}
    # per 128-element half: ql[64] low nibbles -> elements 0..63, high nibbles -> 64..127;
    # qh[32] bits 2k, 2k + 1 -> elements 32k .. 32k + 31
    low = _nibbles(blocks[..., 0:128].unflatten(-1, (2, 64))).flatten(-3)
    high = _bits(blocks[..., 128:192].unflatten(-1, (2, 32)), 4, width=2).flatten(-3)
    q = ((low | (high << 4)).float() - 32).unflatten(-1, (QK_K // 16, 16))
    d = (_half(blocks, 208) * _reinterpret(blocks[..., 192:208], torch.int8).float()).unsqueeze(-1)
    return (d * q).flatten(-2)


_BLOCK_DEQUANTIZERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "q8_0": _q8_0,
    "q4_0": _q4_0,
    "q4_1": _q4_1,
    "q5_0": _q5_0,
    "q5_1": _q5_1,
    "q4_k": _q4_k,
    "q5_k": _q5_k,
    "q6_k": _q6_k,
}
