"""Size the KV cache from a memory budget: bytes ("2GiB", "512MB", 1e9) or a fraction of free memory."""

from __future__ import annotations

import os
import re

import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.ops import bytes_per_token

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def available_memory(device: torch.device) -> int:
    """Bytes free for new allocations on `device` (MemAvailable on CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def parse_budget(budget: str | float | int, device: torch.device) -> int:
    """Bytes for the KV cache: a size with unit, a plain byte count, or a fraction in (0, 1] of free memory."""
    if isinstance(budget, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", budget)
        if not match or match.group(2).lower() not in _UNITS:
            raise InvalidParameterError(
                f"KV cache memory {budget!r}: use bytes with a unit (2GiB, 512MB) or a fraction like 0.2"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
        if unit or value > 1:
            return int(value * _UNITS[unit])
        budget = value
    if 0 < budget <= 1:
        return int(budget * available_memory(device))
    if budget > 1:
        return int(budget)
    raise InvalidParameterError(f"KV cache memory must be positive, got {budget}")


def blocks_for_budget(
    budget_bytes: int,
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    kv_dtype: str,
    model_dtype: torch.dtype,
) -> int:
    per_block = num_layers * block_size * bytes_per_token(num_kv_heads, head_dim, kv_dtype, model_dtype)
    blocks = int(budget_bytes // per_block)
    if blocks < 1:
        raise InvalidParameterError(
            f"KV cache budget of {budget_bytes} bytes holds no block ({per_block:.0f} bytes each)"
        )
    return blocks
