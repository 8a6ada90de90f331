"""Counter-based random numbers: a uniform per (seed, step), computed for a whole batch at once.

Because each draw depends only on the row's own seed and step, a seeded request
samples the same tokens whatever else shares its batch, with no per-row generator.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """The lowbias32 integer hash (Wellons), on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniform(seeds: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """One float64 uniform in [0, 1) per row, from int64 `seeds` and `steps` [B] (53 random bits)."""
    lo, hi = seeds & _MASK32, (seeds >> 32) & _MASK32
    key = _mix32(_mix32(lo ^ 0x9E3779B9) ^ hi)
    key = _mix32(key ^ (steps & _MASK32))
    high_bits = _mix32(key ^ 0x85EBCA6B) >> 6  # 26 bits
    low_bits = _mix32(key ^ 0xC2B2AE35) >> 5  # 27 bits
    return (high_bits * 134217728 + low_bits).to(torch.float64) / 9007199254740992.0


def derive_seed(seed: int, index: int) -> int:
    """A distinct seed for the index-th stream drawn from `seed` (a request's n > 1 samples, an agent's steps);
    index 0 keeps the seed. The only seed derivation in llmkit: a signed 64-bit integer, the range the sampler
    and the OpenAI-compatible server's `seed` take (the sampler reads seeds modulo 2**64, so this form draws
    exactly what its unsigned twin would)."""
    if index == 0:
        return seed
    t = torch.tensor([seed & _MASK32, (seed >> 32) & _MASK32, index & _MASK32], dtype=torch.int64)
    a = _mix32(t[0] ^ _mix32(t[2]))
    b = _mix32(t[1] ^ _mix32(a))
    derived = int(b) << 32 | int(a)
    return derived - (1 << 64) if derived >= 1 << 63 else derived
