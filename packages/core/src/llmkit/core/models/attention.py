"""The attention-backend interface and core's two backends.

The model never touches a KV cache itself: each forward receives an
`AttentionContext` that knows the batch layout (and any cache) and computes
attention for one layer. Core ships a dense causal backend (training, scoring)
and a contiguous KV cache (reference generation); the serving engine plugs in
paged attention through the same interface.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class AttentionContext(Protocol):
    """Attention for one forward pass over N flattened tokens."""

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """query [N, heads, head_dim], key/value [N, kv_heads, head_dim] (after RoPE) -> [N, heads, head_dim]."""
        ...


def _batched_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """query [B, H, T, D], key/value [B, Hkv, S, D], boolean mask [B, 1, T, S] -> [B, T, H, D]."""
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, enable_gqa=True)
    return out.transpose(1, 2)


class DenseCausalAttention:
    """Causal self-attention over a [batch, seq_len] layout with no cache.

    `key_valid` [B, T] marks real tokens (False for padding); `segment_ids` [B, T]
    keeps packed sequences from attending to each other.
    """

    def __init__(
        self,
        batch_size: int,
        seq_len: int,
        key_valid: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ):
        self.batch_size, self.seq_len = batch_size, seq_len
        idx = torch.arange(seq_len, device=device)
        mask = (idx[None, :] <= idx[:, None]).expand(batch_size, seq_len, seq_len)
        if segment_ids is not None:
            mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])
        if key_valid is not None:
            mask = mask & key_valid[:, None, :]
        # A padded query row would otherwise see no key at all (NaN); let it see itself.
        self.mask = (mask | torch.eye(seq_len, dtype=torch.bool, device=device))[:, None]

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, t = self.batch_size, self.seq_len
        q = query.view(b, t, *query.shape[1:]).transpose(1, 2)
        k = key.view(b, t, *key.shape[1:]).transpose(1, 2)
        v = value.view(b, t, *value.shape[1:]).transpose(1, 2)
        return _batched_attention(q, k, v, self.mask).reshape(query.shape)


class KVCache:
    """A contiguous KV cache: [layers, batch, kv_heads, max_len, head_dim] per K and V.

    All rows advance together (left padding); `key_valid` records which columns
    hold real tokens.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        max_len: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str = "cpu",
    ):
        shape = (num_layers, batch_size, num_kv_heads, max_len, head_dim)
        self.key = torch.zeros(shape, dtype=dtype, device=device)
        self.value = torch.zeros(shape, dtype=dtype, device=device)
        self.key_valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.batch_size, self.max_len, self.length = batch_size, max_len, 0

    def step(self, valid: torch.Tensor) -> CachedAttention:
        """Reserve the next T columns for new tokens (`valid` [B, T]) and return their attention context."""
        t = valid.shape[1]
        if self.length + t > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; {self.length} used, {t} more requested")
        start = self.length
        self.key_valid[:, start : start + t] = valid
        self.length += t
        return CachedAttention(self, start, t)


class CachedAttention:
    """Attention for T new tokens per row that writes their K/V into a `KVCache`."""

    def __init__(self, cache: KVCache, start: int, num_new: int):
        self.cache, self.start, self.num_new = cache, start, num_new
        end = start + num_new
        cols = torch.arange(end, device=cache.key.device)
        rows = torch.arange(start, end, device=cache.key.device)
        causal = cols[None, :] <= rows[:, None]
        mask = causal[None] & cache.key_valid[:, None, :end]
        self.mask = (mask | (cols[None, :] == rows[:, None])[None])[:, None]

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, t, end = self.cache.batch_size, self.num_new, self.start + self.num_new
        k_cache, v_cache = self.cache.key[layer], self.cache.value[layer]
        k_cache[:, :, self.start : end] = key.view(b, t, *key.shape[1:]).transpose(1, 2)
        v_cache[:, :, self.start : end] = value.view(b, t, *value.shape[1:]).transpose(1, 2)
        q = query.view(b, t, *query.shape[1:]).transpose(1, 2)
        out = _batched_attention(q, k_cache[:, :, :end], v_cache[:, :, :end], self.mask)
        return out.reshape(query.shape)
