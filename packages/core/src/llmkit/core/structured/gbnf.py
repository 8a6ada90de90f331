"""The grammar text format: EBNF as llama.cpp's GBNF writes it.

    root   ::= "{" ws pair ("," ws pair)* "}"     # rules: name ::= expression
    pair   ::= [a-z]+ ":" [0-9]{1,3}             # "literals", [classes], [^negated], . (any character)
    ws     ::= [ \\t\\n]?                          # ( groups ), | alternatives, * + ? {m} {m,} {m,n}

Rule names are letters, digits, '-' and '_'; the start rule is `root`. Literals and classes take
the escapes \\n \\r \\t \\\\ \\" \\] \\xHH \\uHHHH \\UHHHHHHHH; `#` starts a comment.
"""

from __future__ import annotations

import re

from .ir import EMPTY, Expr, Grammar, GrammarError, Ref, alt, literal, repeat, seq
from .regex import MAX_REPEAT
from .utf8 import MAX_CODE_POINT, code_point_ranges, complement, normalize

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "\\": 0x5C,
    '"': 0x22,
    "]": 0x5D,
    "[": 0x5B,
    "-": 0x2D,
    "^": 0x5E,
    "/": 0x2F,
}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}


class _GbnfParser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def fail(self, message: str) -> GrammarError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        return GrammarError(f"grammar line {line}, column {column}: {message}")

    def skip_space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif ch in " \t\r" or (newlines and ch == "\n"):
                self.pos += 1
            else:
                return

    def parse(self) -> Grammar:
        rules: dict[str, Expr] = {}
        self.skip_space(True)
        while self.pos < len(self.text):
            name = self.name()
            self.skip_space(False)
            if not self.text.startswith("::=", self.pos):
                raise self.fail(f"expected '::=' after rule name {name!r}")
            self.pos += 3
            self.skip_space(True)  # a body may start on the next line
            if name in rules:
                raise self.fail(f"rule {name!r} is defined twice")
            rules[name] = self.alternatives(nested=False)
            self.skip_space(True)
        if "root" not in rules:
            raise GrammarError("the grammar has no 'root' rule")
        grammar = Grammar(rules, "root")
        grammar.check_references()
        return grammar

    def name(self) -> str:
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a rule name")
        self.pos = match.end()
        return match.group()

    def alternatives(self, nested: bool) -> Expr:
        branches = [self.sequence(nested)]
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            self.skip_space(True)
            branches.append(self.sequence(nested))
        return alt(*branches)

    def sequence(self, nested: bool) -> Expr:
        """Elements up to '|', ')' or, outside parentheses, the end of the line (as llama.cpp reads it)."""
        items: list[Expr] = []
        while True:
            self.skip_space(nested)
            if self.pos >= len(self.text) or self.text[self.pos] in "|)\n":
                return seq(*items) if items else EMPTY
            items.append(self.postfix(self.atom(nested)))

    def atom(self, nested: bool) -> Expr:
        ch = self.text[self.pos]
        if ch == '"':
            return self.string()
        if ch == "[":
            return code_point_ranges(self.char_class())
        if ch == ".":
            self.pos += 1
            return code_point_ranges([(0, MAX_CODE_POINT)])
        if ch == "(":
            self.pos += 1
            inner = self.alternatives(nested=True)
            self.skip_space(True)
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.fail("missing ')'")
            self.pos += 1
            return inner
        if _NAME.match(ch):
            return Ref(self.name())
        raise self.fail(f"unexpected {ch!r}")

    def postfix(self, expr: Expr) -> Expr:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in "*+?":
                self.pos += 1
                expr = repeat(expr, *{"*": (0, None), "+": (1, None), "?": (0, 1)}[ch])
            elif ch == "{":
                match = re.compile(r"\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}").match(self.text, self.pos)
                if not match:
                    raise self.fail("malformed {m,n} repetition")
                low = int(match.group(1))
                high = low if match.group(2) is None else (int(match.group(3)) if match.group(3) else None)
                if low > MAX_REPEAT or (high or 0) > MAX_REPEAT:
                    raise self.fail(f"repetition counts above {MAX_REPEAT} are not supported")
                if high is not None and high < low:
                    raise self.fail("repetition has max below min")
                self.pos = match.end()
                expr = repeat(expr, low, high)
            else:
                return expr
        return expr

    def char(self, closing: str) -> int:
        if self.pos >= len(self.text):
            raise self.fail(f"unterminated literal (missing {closing})")
        ch = self.text[self.pos]
        self.pos += 1
        if ch != "\\":
            return ord(ch)
        if self.pos >= len(self.text):
            raise self.fail("unterminated escape")
        esc = self.text[self.pos]
        self.pos += 1
        if esc in _HEX_WIDTH:
            digits = self.text[self.pos : self.pos + _HEX_WIDTH[esc]]
            self.pos += _HEX_WIDTH[esc]
            try:
                value = int(digits, 16)
            except ValueError:
                raise self.fail(f"bad \\{esc} escape {digits!r}") from None
            if value > MAX_CODE_POINT:
                raise self.fail(f"code point {value:#x} is beyond Unicode")
            return value
        if esc not in _ESCAPES:
            raise self.fail(f"unknown escape '\\{esc}'")
        return _ESCAPES[esc]

    def string(self) -> Expr:
        self.pos += 1
        chars = []
        while self.pos < len(self.text) and self.text[self.pos] != '"':
            if self.text[self.pos] == "\n":
                raise self.fail("newline inside a literal (write \\n)")
            chars.append(chr(self.char('"')))
        if self.pos >= len(self.text):
            raise self.fail('unterminated literal (missing ")')
        self.pos += 1
        text = "".join(chars)
        return literal(text.encode("utf-8", "surrogatepass")) if text else EMPTY

    def char_class(self) -> list[tuple[int, int]]:
        self.pos += 1
        negate = self.pos < len(self.text) and self.text[self.pos] == "^"
        if negate:
            self.pos += 1
        ranges = []
        while self.pos < len(self.text) and self.text[self.pos] != "]":
            lo = self.char("]")
            hi = lo
            if self.text.startswith("-", self.pos) and self.pos + 1 < len(self.text) and self.text[self.pos + 1] != "]":
                self.pos += 1
                hi = self.char("]")
                if hi < lo:
                    raise self.fail("character range is reversed")
            ranges.append((lo, hi))
        if self.pos >= len(self.text):
            raise self.fail("unterminated character class (missing ])")
        self.pos += 1
        ranges = normalize(ranges)
        if not ranges and not negate:
            raise self.fail("empty character class")
        return complement(ranges) if negate else ranges


def parse_gbnf(text: str) -> Grammar:
    if not isinstance(text, str):
        raise GrammarError(f"a grammar must be text, got {type(text).__name__}")
    return _GbnfParser(text).parse()
