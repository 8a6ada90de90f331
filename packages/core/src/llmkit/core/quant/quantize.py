"""Quantize float weights into GGUF block formats (for HF checkpoints loaded with `--quantize`, and tests).

q8_0, q4_0, q4_1, q5_0 and q5_1 use gguf-py's quantizers (bit-exact with ggml's reference ones);
f32, f16 and bf16 are torch casts (round to nearest even); q4_k is our own port of ggml's
`quantize_row_q4_K_ref`, which gguf-py does not implement.
"""

from __future__ import annotations

import numpy as np
import torch
from gguf import quants as gguf_quants

from ..errors import InvalidParameterError
from .formats import row_bytes, weight_format
from .weight import QuantizedWeight

_FLOAT_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
_GGUF_QUANTIZED = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
QUANTIZABLE = (*_FLOAT_DTYPES, *_GGUF_QUANTIZED, "q4_k")

_Q4_K_CHUNK_ELEMENTS = 1 << 18  # bounds the [sub-blocks, candidates, 32] search temporaries (~22 MB)


def quantize(weight: torch.Tensor, fmt_name: str) -> QuantizedWeight:
    """`weight` (float [rows, cols]) stored as `fmt_name` blocks, on the same device."""
    fmt = weight_format(fmt_name)
    if fmt.name not in QUANTIZABLE:
        raise InvalidParameterError(
            f"llmkit cannot quantize to {fmt.name}; quantizable formats: {', '.join(QUANTIZABLE)}"
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise InvalidParameterError("quantize takes a 2-D floating-point tensor [rows, cols]")
    rows, cols = weight.shape
    row_bytes(fmt, cols)  # raises unless cols is a whole number of blocks
    values = weight.detach().float()
    if not bool(torch.isfinite(values).all()):
        raise InvalidParameterError(f"cannot quantize to {fmt.name}: the weight holds inf or nan")
    if fmt.name in _FLOAT_DTYPES:
        data = values.to(_FLOAT_DTYPES[fmt.name]).contiguous().view(torch.uint8)
    elif fmt.name == "q4_k":
        chunk = max(1, _Q4_K_CHUNK_ELEMENTS // cols)
        data = torch.cat([_quantize_q4_k(values[start : start + chunk]) for start in range(0, rows, chunk)])
    else:
        stored = gguf_quants.quantize(values.cpu().numpy(), fmt.ggml_type)
        data = torch.from_numpy(np.ascontiguousarray(stored)).to(weight.device)
    return QuantizedWeight(data.reshape(rows, -1), fmt, rows, cols)


def _quantize_q4_k(x: torch.Tensor) -> torch.Tensor:
    """Port of ggml's quantize_row_q4_K_ref: [rows, cols] float32 -> [rows, cols / 256, 144] uint8.

    Each 32-element sub-block gets a scale and a min from `_scale_and_min_search`; the 8 scales
    and 8 mins of a 256-element super-block are stored as 6-bit multiples of the f16 super-block
    scales d = max(scale) / 63 and dmin = max(min) / 63, and the 4-bit codes are recomputed
    against those stored values. Measured relative RMS error on N(0, 1) weights: see docs/core.md.
    """
    rows, cols = x.shape
    sub = x.reshape(rows, cols // 256, 8, 32)
    scales, mins = _scale_and_min_search(sub)  # [rows, super-blocks, 8], mins >= 0 (subtracted)
    max_scale = scales.amax(dim=-1, keepdim=True)
    max_min = mins.amax(dim=-1, keepdim=True)
    inv_scale = torch.where(max_scale > 0, 63 / max_scale, torch.zeros_like(max_scale))
    inv_min = torch.where(max_min > 0, 63 / max_min, torch.zeros_like(max_min))
    ls = torch.round(inv_scale * scales).clamp(0, 63).to(torch.uint8)
    lm = torch.round(inv_min * mins).clamp(0, 63).to(torch.uint8)
    d = (max_scale / 63).to(torch.float16)
    dmin = (max_min / 63).to(torch.float16)
    if not bool(torch.isfinite(d).all() and torch.isfinite(dmin).all()):
        raise InvalidParameterError("cannot quantize to q4_k: weights too large for its f16 super-block scales")

    step = (d.float() * ls.float()).unsqueeze(-1)
    offset = (dmin.float() * lm.float()).unsqueeze(-1)
    safe_step = torch.where(step != 0, step, torch.ones_like(step))
    codes = torch.round((sub + offset) / safe_step).clamp(0, 15)
    codes = torch.where(step != 0, codes, torch.zeros_like(codes)).to(torch.uint8)  # [rows, sb, 8, 32]

    packed_scales = torch.cat(
        (
            ls[..., :4] | ((ls[..., 4:] >> 4) << 6),
            lm[..., :4] | ((lm[..., 4:] >> 4) << 6),
            (ls[..., 4:] & 0x0F) | ((lm[..., 4:] & 0x0F) << 4),
        ),
        dim=-1,
    )
    pairs = codes.unflatten(-2, (4, 2))  # sub-blocks 2i (low nibbles) and 2i + 1 (high nibbles)
    qs = (pairs[..., 0, :] | (pairs[..., 1, :] << 4)).flatten(-2)
    return torch.cat((d.view(torch.uint8), dmin.view(torch.uint8), packed_scales, qs), dim=-1)


def _scale_and_min_search(x: torch.Tensor, nmax: int = 15, steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """ggml's make_qkx2_quants(32, 15, x, weights, ..., rmin=-1, rdelta=0.1, nstep=20) over x [..., 32].

    Weights are rms(x) + |x|. Start from the min/max grid; then for i = 0..20 round onto the grid of
    (nmax - 1 + 0.1 i) / (max - min) steps above the current min, refit scale and min by weighted
    least squares (min clamped to <= 0) and keep the fit when its weighted squared error is lower.
    As in ggml, later grids start from the min kept so far. Returns (scale, -min), both >= 0.
    """
    weights = x.square().mean(dim=-1, keepdim=True).sqrt() + x.abs()
    high = x.amax(dim=-1, keepdim=True)
    low = x.amin(dim=-1, keepdim=True).clamp(max=0)
    flat = high == low
    span = torch.where(flat, torch.ones_like(high), high - low)
    sum_w, sum_x = weights.sum(-1, keepdim=True), (weights * x).sum(-1, keepdim=True)

    def fit_error(scale: torch.Tensor, minimum: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        return (weights * (scale * levels + minimum - x).square()).sum(-1, keepdim=True)

    scale, minimum = span / nmax, low
    best_error = fit_error(scale, minimum, torch.round(nmax / span * (x - low)).clamp(0, nmax))
    for step in range(steps + 1):
        iscale = (-1 + 0.1 * step + nmax) / torch.where(flat, torch.ones_like(high), high - minimum)
        levels = torch.round(iscale * (x - minimum)).clamp(0, nmax)
        sum_l = (weights * levels).sum(-1, keepdim=True)
        sum_l2 = (weights * levels.square()).sum(-1, keepdim=True)
        sum_xl = (weights * levels * x).sum(-1, keepdim=True)
        det = sum_w * sum_l2 - sum_l.square()
        solvable = det > 0
        safe_det = torch.where(solvable, det, torch.ones_like(det))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / safe_det
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / safe_det
        positive_min = this_min > 0
        safe_l2 = torch.where(sum_l2 > 0, sum_l2, torch.ones_like(sum_l2))
        this_scale = torch.where(positive_min, sum_xl / safe_l2, this_scale)
        this_min = torch.where(positive_min, torch.zeros_like(this_min), this_min)
        error = fit_error(this_scale, this_min, levels)
        better = solvable & (error < best_error)
        best_error = torch.where(better, error, best_error)
        scale = torch.where(better, this_scale, scale)
        minimum = torch.where(better, this_min, minimum)
    scale = torch.where(flat, torch.zeros_like(scale), scale).clamp(min=0)
    minimum = torch.where(flat, low, minimum)
    return scale.squeeze(-1), -minimum.squeeze(-1)
