"""Exact grammars for JSON numbers, including integer and number bounds as digit automata.

A range of integers becomes a union of same-length digit patterns (the classic range-to-regex
construction), so `minimum`/`maximum` are enforced token by token, not checked afterwards.
"""

from __future__ import annotations

from .ir import Bytes, Expr, alt, byte_set, literal, optional, repeat, seq

DIGIT = Bytes(byte_set((0x30, 0x39)))
NONZERO = Bytes(byte_set((0x31, 0x39)))


def _digits_between(a: str, b: str) -> Expr:
    """Digit strings of equal length between a and b inclusive (leading zeros allowed)."""
    if a == b:
        return literal(a)
    if len(a) == 1:
        return Bytes(byte_set((ord(a), ord(b))))
    if a[0] == b[0]:
        return seq(literal(a[0]), _digits_between(a[1:], b[1:]))
    rest = len(a) - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return seq(Bytes(byte_set((ord(a[0]), ord(b[0])))), repeat(DIGIT, rest, rest))
    parts = [seq(literal(a[0]), _digits_between(a[1:], "9" * rest))]
    if ord(b[0]) - ord(a[0]) > 1:
        parts.append(seq(Bytes(byte_set((ord(a[0]) + 1, ord(b[0]) - 1))), repeat(DIGIT, rest, rest)))
    parts.append(seq(literal(b[0]), _digits_between("0" * rest, b[1:])))
    return alt(*parts)


def natural_range(low: int, high: int | None) -> Expr | None:
    """Canonical decimal digits (no leading zeros) of the integers in [low, high], low >= 0; None if empty.
    high None means no upper bound."""
    if high is None:
        width = len(str(low))
        return alt(natural_range(low, 10**width - 1), seq(NONZERO, repeat(DIGIT, width, None)))
    if low > high:
        return None
    parts = []
    for n in range(len(str(low)), len(str(high)) + 1):
        lo_n = max(low, 10 ** (n - 1) if n > 1 else 0)
        hi_n = min(high, 10**n - 1)
        if lo_n <= hi_n:
            parts.append(_digits_between(str(lo_n), str(hi_n)))
    return alt(*parts)


def integer_range(low: int | None, high: int | None) -> Expr | None:
    """JSON integers in [low, high] (None = unbounded on that side); None if the range is empty."""
    parts = []
    if low is None or low < 0:
        magnitude = natural_range(1 if high is None or high >= 0 else -high, None if low is None else -low)
        if magnitude is not None:
            parts.append(seq(literal("-"), magnitude))
    if high is None or high >= 0:
        nonneg = natural_range(max(low or 0, 0), high)
        if nonneg is not None:
            parts.append(nonneg)
    return alt(*parts) if parts else None


def _fraction(kind: str) -> Expr:
    if kind == "any":
        return seq(literal("."), repeat(DIGIT, 1, None))
    if kind == "zero":
        return seq(literal("."), repeat(literal("0"), 1, None))
    return seq(literal("."), repeat(DIGIT, 0, None), NONZERO, repeat(DIGIT, 0, None))


Bound = tuple[int, bool] | None  # (value, exclusive)


def _magnitude(lower: Bound, upper: Bound) -> Expr | None:
    """Unsigned decimals m = M[.F] (no exponent) with lower <(=) m <(=) upper; bounds are integers >= 0."""
    low, low_excl = lower if lower is not None else (0, False)
    parts = []
    any_low = low + 1 if low_excl else low
    any_high = None if upper is None else upper[0] - 1
    whole = natural_range(any_low, any_high)
    if whole is not None:
        parts.append(seq(whole, optional(_fraction("any"))))
    if low_excl and (upper is None or low < upper[0]):
        parts.append(seq(literal(str(low)), _fraction("nonzero")))
    if upper is not None and not upper[1] and (upper[0] > low or (upper[0] == low and not low_excl)):
        parts.append(seq(literal(str(upper[0])), optional(_fraction("zero"))))
    return alt(*parts) if parts else None


def _tighter_lower(a: Bound, b: Bound) -> Bound:
    if a is None or b is None:
        return a or b
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return (a[0], a[1] or b[1])


def number_range(lower: Bound, upper: Bound) -> Expr | None:
    """JSON numbers x with lower <(=) x <(=) upper (integer bounds); without bounds, any JSON number."""
    if lower is None and upper is None:
        mantissa = seq(optional(literal("-")), natural_range(0, None), optional(_fraction("any")))
        exponent = seq(
            Bytes(byte_set((0x45, 0x45), (0x65, 0x65))), optional(Bytes(byte_set((0x2B, 0x2B), (0x2D, 0x2D))))
        )
        return seq(mantissa, optional(seq(exponent, repeat(DIGIT, 1, None))))
    parts = []
    # x >= 0, written without a sign: m = x.
    nonneg_lower = _tighter_lower((0, False), lower)
    if upper is None or upper[0] > 0 or (upper[0] == 0 and not upper[1]):
        part = _magnitude(nonneg_lower, upper)
        if part is not None:
            parts.append(part)
    # x <= 0 written "-m" (m >= 0, so "-0.0" too): bounds flip.
    neg_lower = _tighter_lower((0, False), None if upper is None else (-upper[0], upper[1]))
    neg_upper = None if lower is None else (-lower[0], lower[1])
    if neg_upper is None or neg_upper[0] > 0 or neg_upper == (0, False):
        part = _magnitude(neg_lower, neg_upper)
        if part is not None:
            parts.append(seq(literal("-"), part))
    return alt(*parts) if parts else None
