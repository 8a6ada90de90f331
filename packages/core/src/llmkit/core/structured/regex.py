"""Regular expressions (the common ECMAScript / Python subset) compiled to the byte IR.

Characters are code points; each character set becomes its UTF-8 byte pattern through an
`encode` callback, so the same parser serves whole-output regexes and JSON-string patterns
(where quotes, backslashes and control characters must appear escaped).
"""

from __future__ import annotations

from collections.abc import Callable

from .ir import EMPTY, Expr, GrammarError, alt, repeat, seq
from .utf8 import MAX_CODE_POINT, code_point_ranges, complement, normalize

Ranges = list[tuple[int, int]]
Encoder = Callable[[Ranges], Expr]

DIGIT: Ranges = [(0x30, 0x39)]
WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE: Ranges = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A)]
SPACE += [(0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)]
ANY_BUT_NEWLINE: Ranges = complement([(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)])
_CLASS_ESCAPES = {"d": DIGIT, "w": WORD, "s": SPACE}
_CHAR_ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "0": 0x00, "a": 0x07, "e": 0x1B}
MAX_REPEAT = 10_000


class _Parser:
    def __init__(self, pattern: str, encode: Encoder, where: str):
        self.text, self.pos, self.encode, self.where = pattern, 0, encode, where

    def fail(self, message: str) -> GrammarError:
        return GrammarError(f"{self.where}: {message} at position {self.pos} of regex {self.text!r}")

    def peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ""

    def take(self) -> str:
        if self.pos >= len(self.text):
            raise self.fail("unexpected end")
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def parse_top(self) -> list[tuple[bool, Expr, bool]]:
        """Top-level alternatives as (anchored at start, expression, anchored at end)."""
        branches = []
        while True:
            start = self.peek() == "^"
            if start:
                self.pos += 1
            items, end = [], False
            while self.peek() not in ("", "|"):
                if self.peek() == "$" and self.peek(1) in ("", "|"):
                    self.pos += 1
                    end = True
                    break
                items.append(self.parse_quantified())
            branches.append((start, seq(*items) if items else EMPTY, end))
            if self.peek() != "|":
                break
            self.pos += 1
        if self.pos < len(self.text):
            raise self.fail("unbalanced ')'")
        return branches

    def parse_alternation(self) -> Expr:
        branches = [self.parse_sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.parse_sequence())
        return alt(*branches)

    def parse_sequence(self) -> Expr:
        items = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.parse_quantified())
        return seq(*items) if items else EMPTY

    def parse_quantified(self) -> Expr:
        atom = self.parse_atom()
        if self.peek() not in ("*", "+", "?", "{"):
            return atom
        bounds = self.parse_quantifier()
        if bounds is None:
            return atom
        atom = repeat(atom, *bounds)
        if self.peek() == "?":  # lazy: the same language
            self.pos += 1
        elif self.peek() == "+":
            raise self.fail("possessive quantifiers are not supported")
        if self.peek() in ("*", "+", "?") or (self.peek() == "{" and self.peek(1).isdigit()):
            raise self.fail("multiple repeat")
        return atom

    def parse_quantifier(self) -> tuple[int, int | None] | None:
        ch = self.peek()
        if ch != "{":
            self.pos += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        close = self.text.find("}", self.pos)
        body = self.text[self.pos + 1 : close] if close > 0 else ""
        parts = body.split(",")
        if (
            close < 0
            or len(parts) > 2
            or not parts[0].isdigit()
            or (len(parts) == 2 and parts[1] not in ("",) and not parts[1].isdigit())
        ):
            return None if self.peek(1) and not self.peek(1).isdigit() else self._bad_quantifier()
        low = int(parts[0])
        high = low if len(parts) == 1 else (int(parts[1]) if parts[1] else None)
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise self.fail(f"repetition counts above {MAX_REPEAT} are not supported")
        if high is not None and high < low:
            raise self.fail(f"repetition {{{body}}} has max below min")
        self.pos = close + 1
        return low, high

    def _bad_quantifier(self):
        raise self.fail("malformed {m,n} quantifier")

    def parse_atom(self) -> Expr:
        ch = self.take()
        if ch == "(":
            if self.peek() == "?":
                self.pos += 1
                kind = self.take()
                if (kind == "P" and self.peek() == "<") or (kind == "<" and self.peek() not in ("=", "!")):
                    if kind == "P":
                        self.pos += 1
                    close = self.text.find(">", self.pos)
                    if close < 0:
                        raise self.fail("unterminated group name")
                    self.pos = close + 1
                elif kind != ":":
                    raise self.fail(f"'(?{kind}' (lookaround, flags or backreference) is not supported")
            inner = self.parse_alternation()
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.pos += 1
            return inner
        if ch == "[":
            return self.encode(self.parse_class())
        if ch == ".":
            return self.encode(ANY_BUT_NEWLINE)
        if ch == "\\":
            return self.encode(self.parse_escape(in_class=False))
        if ch in ("^", "$"):
            raise self.fail(f"anchor {ch!r} inside the pattern (only at its start or end) is not supported")
        if ch in ("*", "+", "?"):
            raise self.fail(f"nothing to repeat before {ch!r}")
        if ch == ")":
            raise self.fail("unbalanced ')'")
        return self.encode([(ord(ch), ord(ch))])

    def parse_escape(self, in_class: bool) -> Ranges:
        ch = self.take()
        if ch in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[ch]
        if ch.lower() in _CLASS_ESCAPES and ch.isupper():
            return complement(_CLASS_ESCAPES[ch.lower()])
        if ch in _CHAR_ESCAPES:
            cp = _CHAR_ESCAPES[ch]
            return [(cp, cp)]
        if ch == "b" and in_class:
            return [(8, 8)]
        if ch in ("x", "u", "U"):
            return [(cp := self.parse_hex(ch), cp)]
        if ch.isdigit() or ch in ("b", "B", "p", "P", "k", "A", "z", "Z", "G", "c"):
            raise self.fail(f"escape '\\{ch}' is not supported")
        return [(ord(ch), ord(ch))]

    def parse_hex(self, kind: str) -> int:
        if kind == "u" and self.peek() == "{":
            close = self.text.find("}", self.pos)
            digits = self.text[self.pos + 1 : close] if close > 0 else ""
            self.pos = close + 1 if close > 0 else self.pos
        else:
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = self.text[self.pos : self.pos + width]
            self.pos += width
        try:
            cp = int(digits, 16)
        except ValueError:
            raise self.fail(f"bad \\{kind} escape {digits!r}") from None
        if cp > MAX_CODE_POINT:
            raise self.fail(f"code point {cp:#x} is beyond Unicode")
        return cp

    def parse_class(self) -> Ranges:
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        ranges: Ranges = []
        first = True
        while True:
            ch = self.take()
            if ch == "]" and not first:
                break
            first = False
            if ch == "[" and self.peek() == ":":
                raise self.fail("POSIX classes like [:alpha:] are not supported")
            if ch == "\\":
                item = self.parse_escape(in_class=True)
            else:
                item = [(ord(ch), ord(ch))]
            if self.peek() == "-" and self.peek(1) not in ("]", "") and len(item) == 1 and item[0][0] == item[0][1]:
                self.pos += 1
                hi_ch = self.take()
                hi = self.parse_escape(in_class=True) if hi_ch == "\\" else [(ord(hi_ch), ord(hi_ch))]
                if len(hi) != 1 or hi[0][0] != hi[0][1] or hi[0][0] < item[0][0]:
                    raise self.fail("bad character range in class")
                item = [(item[0][0], hi[0][0])]
            ranges.extend(item)
        ranges = normalize(ranges)
        return complement(ranges) if negate else ranges


def regex_to_ir(
    pattern: str, encode: Encoder = code_point_ranges, where: str = "regex", anywhere: Expr | None = None
) -> Expr:
    """The language of `pattern`. Without `anywhere` the pattern must match the whole text (anchors
    are optional); with it, unanchored ends may be surrounded by `anywhere` (search semantics)."""
    if not isinstance(pattern, str):
        raise GrammarError(f"{where}: a regex must be a string, got {type(pattern).__name__}")
    branches = []
    for start, body, end in _Parser(pattern, encode, where).parse_top():
        if anywhere is not None:
            body = seq(*(() if start else (anywhere,)), body, *(() if end else (anywhere,)))
        branches.append(body)
    return alt(*branches)
