"""Shared builders for the kernel tests: random paged caches filled through the reference, and tolerances."""

from __future__ import annotations

import contextlib
import math

import torch

from llmkit.core.ops import allocate, kv_quant
from llmkit.kernels import _C

# Stated tolerances, as max |native - reference| / max |reference| over an output.
RELATIVE_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}
MODEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.float()
    return float((actual.float() - expected).abs().max() / expected.abs().max().clamp_min(1e-30))


def random_values(generator: torch.Generator, *shape: int, dtype=torch.float32) -> torch.Tensor:
    """Normal values with a random per-row magnitude (never all zeros)."""
    x = torch.randn(*shape, generator=generator) * (0.25 + 4 * torch.rand(*shape[:-1], 1, generator=generator))
    return x.to(dtype)


def paged_cache(generator, lens, num_kv_heads, head_dim, block_size, kv_dtype, model_dtype, spare_blocks=3):
    """A cache holding random K/V for sequences of `lens` (written by the reference in a few chunks each),
    the block tables (scattered block ids), and seq_lens."""
    width = max(math.ceil(n / block_size) for n in lens)
    total = sum(math.ceil(n / block_size) for n in lens) + spare_blocks
    cache = allocate(total, num_kv_heads, block_size, head_dim, kv_dtype, model_dtype)
    order = torch.randperm(total, generator=generator)
    tables = torch.zeros(len(lens), width, dtype=torch.int32)
    used = 0
    for b, n in enumerate(lens):
        blocks = math.ceil(n / block_size)
        tables[b, :blocks] = order[used : used + blocks].int()
        used += blocks
        slots = tables[b].long()[torch.arange(n) // block_size] * block_size + torch.arange(n) % block_size
        key = random_values(generator, n, num_kv_heads, head_dim, dtype=model_dtype)
        value = random_values(generator, n, num_kv_heads, head_dim, dtype=model_dtype)
        pieces = int(torch.randint(1, 4, (1,), generator=generator))
        for piece in torch.arange(n).chunk(pieces):
            kv_quant.reshape_and_cache(key[piece], value[piece], cache, slots[piece])
    return cache, tables, torch.tensor(lens, dtype=torch.int32)


@contextlib.contextmanager
def cpu_isa(name: str):
    """Run the native CPU kernels of one instruction-set build inside the block."""
    previous = _C.cpu_isa()
    _C.set_cpu_isa(name)
    try:
        yield
    finally:
        _C.set_cpu_isa(previous)
