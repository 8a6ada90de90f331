"""JSON string pieces: characters as they appear between the quotes, patterns and formats.

Regexes in a schema (`pattern`, formats) describe the decoded string, while the grammar
produces its JSON literal, so each character set is encoded as JSON would write it:
plain UTF-8, or an escape for quotes, backslashes and control characters.
"""

from __future__ import annotations

import functools

from .ir import Bytes, Expr, GrammarError, alt, byte_set, literal, seq, star
from .regex import Ranges, regex_to_ir
from .utf8 import code_point_ranges, complement, normalize

_UNSAFE: Ranges = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]
SAFE_CHAR = code_point_ranges(complement(_UNSAFE))  # a character written as itself
_HEX = Bytes(byte_set((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)))
_HEX_NOT_D = Bytes(byte_set((0x30, 0x39), (0x41, 0x43), (0x45, 0x46), (0x61, 0x63), (0x65, 0x66)))
_HEX_0_7 = Bytes(byte_set((0x30, 0x37)))
_SHORT_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
# \uXXXX outside the surrogate range D800-DFFF: each escape is one code point, so lengths count exactly.
_UNICODE_ESCAPE = seq(
    literal("\\u"),
    alt(seq(_HEX_NOT_D, _HEX, _HEX, _HEX), seq(Bytes(byte_set((0x44, 0x44), (0x64, 0x64))), _HEX_0_7, _HEX, _HEX)),
)
ESCAPE = alt(seq(literal("\\"), Bytes(byte_set(*((ord(c), ord(c)) for c in '"\\/bfnrt')))), _UNICODE_ESCAPE)
JSON_CHAR = alt(SAFE_CHAR, ESCAPE)  # one character of a JSON string literal
QUOTE = literal('"')


def encode_for_json(ranges: Ranges) -> Expr:
    """Code points as they appear inside a JSON string literal (quotes, backslash and controls escaped)."""
    ranges = normalize(ranges)
    safe = [(max(lo, a), min(hi, b)) for lo, hi in ranges for a, b in complement(_UNSAFE) if max(lo, a) <= min(hi, b)]
    parts = [code_point_ranges(safe)] if safe else []
    for lo, hi in ranges:
        for cp in range(lo, min(hi, 0x5C) + 1):
            if cp < 0x20 or cp in (0x22, 0x5C):
                parts.append(literal(_SHORT_ESCAPES.get(cp, f"\\u{cp:04x}")))
    return alt(*parts)


def pattern_string(pattern: str, where: str) -> Expr:
    """A JSON string literal whose decoded value matches `pattern` (search semantics, as JSON Schema)."""
    return seq(QUOTE, regex_to_ir(pattern, encode_for_json, where, anywhere=star(JSON_CHAR)), QUOTE)


_YEAR = r"\d{4}"
_LEAP_YEAR = r"(\d\d(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = r"((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))"
DATE = rf"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
TIME = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
FORMATS = {
    "date": DATE,
    "time": TIME,
    "date-time": f"{DATE}T{TIME}",
    "email": rf"{_EMAIL_ATOM}(\.{_EMAIL_ATOM})*@[A-Za-z0-9]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?)*\.[A-Za-z]{{2,24}}",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "uri": r"[A-Za-z][A-Za-z0-9+.-]*:([A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*",
    "ipv4": r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
}


def format_string(name: str, where: str) -> Expr:
    """A JSON string literal in format `name` (a key of FORMATS; `where` names the schema location)."""
    if name not in FORMATS:
        raise GrammarError(f"unknown string format {name!r} (at JSON pointer {where!r})")
    return _format_literal(name)


@functools.cache
def _format_literal(name: str) -> Expr:
    """The built-in formats are constants: each is parsed once per process and shared by every schema
    that uses it (expressions are immutable)."""
    return seq(QUOTE, regex_to_ir(f"^{FORMATS[name]}$", encode_for_json, f"format {name!r}"), QUOTE)
