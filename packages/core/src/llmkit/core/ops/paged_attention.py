"""Reference paged attention (the specification of the native kernels).

Decode: one query token per sequence attends to the first seq_lens[b] tokens its block
table names. Prefill: each sequence's new tokens (the last q_len of its seq_len, already
written to the cache) attend causally to everything before them, cached prefix included.
Math in float32; quantized caches are dequantized first (the reference of the quantized math).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidParameterError
from .kv_layout import PagedKVCache
from .kv_quant import gather_blocks


def _sequence_kv(cache: PagedKVCache, block_table: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 K and V of one sequence: [H, length, D]."""
    num_blocks = -(-length // cache.block_size)
    blocks = block_table[:num_blocks].to(torch.int64)
    k = gather_blocks(cache, blocks, "key").transpose(0, 1).flatten(1, 2)[:, :length]
    v = gather_blocks(cache, blocks, "value").transpose(0, 1).flatten(1, 2)[:, :length]
    return k, v


def paged_attention_decode(
    out: torch.Tensor,
    query: torch.Tensor,
    cache: PagedKVCache,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
) -> None:
    """out[b] = softmax(scale * q[b] K_b^T) V_b for query/out [B, H, D], block_tables [B, M], seq_lens [B]."""
    batch = query.shape[0]
    if batch == 0:
        return
    if int(seq_lens.min()) < 1:
        raise InvalidParameterError("seq_lens must be >= 1: a decoding sequence attends to at least its own token")
    width = int(seq_lens.max())
    num_blocks = -(-width // cache.block_size)
    blocks = block_tables[:, :num_blocks].to(torch.int64)
    k = gather_blocks(cache, blocks, "key").permute(0, 2, 1, 3, 4).flatten(2, 3)  # [B, Hkv, S, D]
    v = gather_blocks(cache, blocks, "value").permute(0, 2, 1, 3, 4).flatten(2, 3)
    positions = torch.arange(k.shape[2], device=query.device)
    mask = (positions[None, :] < seq_lens[:, None].to(positions.dtype))[:, None, None, :]
    q = query.to(torch.float32)[:, :, None, :]
    result = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    out.copy_(result[:, :, 0].to(out.dtype))


def paged_attention_prefill(
    out: torch.Tensor,
    query: torch.Tensor,
    cache: PagedKVCache,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    query_start_loc: torch.Tensor,
    scale: float,
) -> None:
    """Variable-length causal attention. query/out [N, H, D] hold each sequence's new tokens back to
    back (sequence b owns rows query_start_loc[b]:query_start_loc[b+1]); seq_lens[b] counts its cached
    prefix plus its new tokens, all of which are already in the cache."""
    starts = query_start_loc.tolist()
    for b, length in enumerate(seq_lens.tolist()):
        lo, hi = starts[b], starts[b + 1]
        if hi == lo:
            continue
        k, v = _sequence_kv(cache, block_tables[b], length)
        q = query[lo:hi].to(torch.float32).transpose(0, 1)  # [H, q_len, D]
        q_positions = torch.arange(length - (hi - lo), length, device=query.device)
        mask = torch.arange(length, device=query.device)[None, :] <= q_positions[:, None]
        result = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        out[lo:hi] = result.transpose(0, 1).to(out.dtype)
