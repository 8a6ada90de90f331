"""The grammar IR every front end compiles to: rules of expressions over bytes.

A `ByteSet` is a 256-bit int (bit b set = byte b allowed). Expressions are immutable tuples
so that equal sub-expressions hash equal and repeated schemas share work.
"""

from __future__ import annotations

import dataclasses

from ..errors import LlmkitError

ALL_BYTES = (1 << 256) - 1


class GrammarError(LlmkitError, ValueError):
    """A schema, regex or grammar that cannot be compiled; the message names the construct and where."""


@dataclasses.dataclass(frozen=True)
class Bytes:
    """One byte from a set."""

    mask: int


@dataclasses.dataclass(frozen=True)
class Seq:
    items: tuple[Expr, ...]


@dataclasses.dataclass(frozen=True)
class Alt:
    items: tuple[Expr, ...]


@dataclasses.dataclass(frozen=True)
class Repeat:
    """`item` repeated min_count..max_count times (max_count None = unbounded)."""

    item: Expr
    min_count: int
    max_count: int | None


@dataclasses.dataclass(frozen=True)
class Ref:
    rule: str


@dataclasses.dataclass(frozen=True)
class Exclude:
    """Strings of `item` (which must not reference rules) except the exact byte strings in `words`."""

    item: Expr
    words: frozenset[bytes]


@dataclasses.dataclass(frozen=True)
class Avoid:
    """Strings of `item` (which must not reference rules) that do not contain `word` anywhere."""

    item: Expr
    word: bytes


Expr = Bytes | Seq | Alt | Repeat | Ref | Exclude | Avoid
EMPTY = Seq(())
_SINGLE_BYTES = tuple(Bytes(1 << b) for b in range(256))  # immutable: every literal shares them


def byte_set(*ranges: tuple[int, int]) -> int:
    mask = 0
    for lo, hi in ranges:
        if lo <= hi:
            mask |= ((1 << (hi - lo + 1)) - 1) << lo
    return mask


def literal(data: bytes | str) -> Expr:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) == 1:
        return _SINGLE_BYTES[raw[0]]
    return Seq(tuple(map(_SINGLE_BYTES.__getitem__, raw)))


def seq(*items: Expr) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Seq) else (item,))
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*items: Expr) -> Expr:
    flat: list[Expr] = []
    for item in items:
        for sub in item.items if isinstance(item, Alt) else (item,):
            if sub not in flat:
                flat.append(sub)
    if not flat:
        raise GrammarError("an alternative with no branches matches nothing")
    return flat[0] if len(flat) == 1 else Alt(tuple(flat))


def optional(item: Expr) -> Expr:
    return Repeat(item, 0, 1)


def star(item: Expr) -> Expr:
    return Repeat(item, 0, None)


def repeat(item: Expr, min_count: int, max_count: int | None) -> Expr:
    if max_count is not None and max_count < min_count:
        raise GrammarError(f"repetition {{{min_count},{max_count}}} has max below min")
    if (min_count, max_count) == (1, 1):
        return item
    if max_count == 0:
        return EMPTY
    return Repeat(item, min_count, max_count)


@dataclasses.dataclass
class Grammar:
    """Named rules and the root rule's name (what a whole output must match)."""

    rules: dict[str, Expr]
    root: str
    called: set[str] = dataclasses.field(default_factory=set)  # rules kept as calls even if not recursive

    def check_references(self) -> None:
        for name, expr in self.rules.items():
            for ref in references(expr):
                if ref not in self.rules:
                    raise GrammarError(f"rule {name!r} refers to undefined rule {ref!r}")
        if self.root not in self.rules:
            raise GrammarError(f"the grammar has no root rule {self.root!r}")


def references(expr: Expr) -> frozenset[str]:
    """Names of the rules `expr` refers to directly. Each composite expression remembers its answer (an
    attribute beside its fields: equality and hashing ignore it), so the shared pieces every JSON grammar
    reuses (a string's characters, numbers) are walked once per process, not once per rule and grammar."""
    known = expr.__dict__.get("_references")
    if known is not None:
        return known
    stack = [expr]  # post-order without recursion: a node is answered once its children are
    while stack:
        e = stack[-1]
        if "_references" in e.__dict__:
            stack.pop()
            continue
        children = _children(e)
        pending = [c for c in children if "_references" not in c.__dict__]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        if isinstance(e, Ref):
            found = frozenset((e.rule,))
        elif not children:
            found = _NO_REFERENCES
        else:
            found = _NO_REFERENCES
            for child in children:
                refs = child.__dict__["_references"]
                if refs and refs is not found:
                    found = found | refs if found else refs
        object.__setattr__(e, "_references", found)  # frozen dataclass: a cache, not a field
    return expr.__dict__["_references"]


_NO_REFERENCES: frozenset[str] = frozenset()


def _children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Seq | Alt):
        return e.items
    if isinstance(e, Repeat | Exclude | Avoid):
        return (e.item,)
    return ()


def nullable_rules(grammar: Grammar) -> set[str]:
    """Rules that match the empty string (least fixpoint)."""
    nullable: set[str] = set()

    def is_nullable(e: Expr) -> bool:
        if isinstance(e, Bytes):
            return False
        if isinstance(e, Seq):
            return all(is_nullable(i) for i in e.items)
        if isinstance(e, Alt):
            return any(is_nullable(i) for i in e.items)
        if isinstance(e, Repeat):
            return e.min_count == 0 or is_nullable(e.item)
        if isinstance(e, Exclude):
            return is_nullable(e.item) and b"" not in e.words
        if isinstance(e, Avoid):
            return is_nullable(e.item) and e.word != b""
        return e.rule in nullable

    changed = True
    while changed:
        changed = False
        for name, expr in grammar.rules.items():
            if name not in nullable and is_nullable(expr):
                nullable.add(name)
                changed = True
    return nullable
