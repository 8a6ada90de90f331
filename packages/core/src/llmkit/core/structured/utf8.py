"""Unicode code-point sets as UTF-8 byte patterns.

A range of code points is split by encoded length and then by continuation-byte boundaries,
so that each piece is a sequence of byte ranges (the construction regex engines use).
"""

from __future__ import annotations

from .ir import Bytes, Expr, alt, byte_set, seq

MAX_CODE_POINT = 0x10FFFF
_LENGTH_LIMITS = ((0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, MAX_CODE_POINT))
SURROGATES = (0xD800, 0xDFFF)


def _encode(cp: int) -> bytes:
    return chr(cp).encode("utf-8", "surrogatepass")


def _split(lo: int, hi: int, length: int) -> list[list[tuple[int, int]]]:
    """Sequences of byte ranges covering [lo, hi], all of one encoded length."""
    if length == 1:
        return [[(lo, hi)]]
    for i in range(1, length):
        span = (1 << (6 * i)) - 1  # code points sharing all but the last i continuation bytes
        if lo & ~span != hi & ~span:
            if lo & span != 0:
                return _split(lo, lo | span, length) + _split((lo | span) + 1, hi, length)
            if hi & span != span:
                return _split(lo, (hi & ~span) - 1, length) + _split(hi & ~span, hi, length)
    a, b = _encode(lo), _encode(hi)
    return [[(a[k], b[k]) for k in range(length)]]


def code_point_ranges(ranges: list[tuple[int, int]]) -> Expr:
    """An expression matching the UTF-8 encoding of any code point in `ranges` (surrogates excluded)."""
    pieces: list[Expr] = []
    for lo, hi in normalize(ranges):
        for part_lo, part_hi in _without_surrogates(lo, hi):
            for length, (len_lo, len_hi) in enumerate(_LENGTH_LIMITS, start=1):
                a, b = max(part_lo, len_lo), min(part_hi, len_hi)
                if a <= b:
                    for byte_ranges in _split(a, b, length):
                        pieces.append(seq(*(Bytes(byte_set(r)) for r in byte_ranges)))
    return alt(*_merge_single_bytes(pieces))


def _merge_single_bytes(pieces: list[Expr]) -> list[Expr]:
    """Fold one-byte pieces into one byte set (smaller NFAs)."""
    mask, rest = 0, []
    for piece in pieces:
        if isinstance(piece, Bytes):
            mask |= piece.mask
        else:
            rest.append(piece)
    return ([Bytes(mask)] if mask else []) + rest


def _without_surrogates(lo: int, hi: int) -> list[tuple[int, int]]:
    s_lo, s_hi = SURROGATES
    if hi < s_lo or lo > s_hi:
        return [(lo, hi)]
    return [r for r in ((lo, s_lo - 1), (s_hi + 1, hi)) if r[0] <= r[1]]


def normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged, non-empty ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Code points not in `ranges`."""
    out, start = [], 0
    for lo, hi in normalize(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    return out
