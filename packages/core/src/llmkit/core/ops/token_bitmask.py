"""Reference token-bitmask application (grammar-constrained decoding)."""

from __future__ import annotations

import torch

from ..errors import InvalidParameterError


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 [B, ceil(V/32)] -> bool [B, V]; bit j of word w allows token 32*w + j."""
    bits = torch.arange(32, device=bitmask.device, dtype=torch.int32)
    allowed = ((bitmask[..., None] >> bits) & 1).bool()
    return allowed.flatten(-2)[..., :vocab_size]


def apply_token_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor, indices: torch.Tensor | None = None) -> None:
    """Set disallowed logits to -inf in place. logits [B, V] float, bitmask int32 [B, ceil(V/32)];
    with `indices`, only those rows (of both) are masked."""
    words = -(-logits.shape[-1] // 32)
    if bitmask.shape != (logits.shape[0], words):
        raise InvalidParameterError(
            f"bitmask must have shape ({logits.shape[0]}, {words}) for logits {tuple(logits.shape)}, got {tuple(bitmask.shape)}"
        )
    rows = slice(None) if indices is None else indices.to(torch.int64)
    allowed = unpack_bitmask(bitmask[rows], logits.shape[-1])
    logits[rows] = logits[rows].masked_fill(~allowed, float("-inf"))
