"""Building blocks of JSON grammars: whitespace, members with optional properties, bounded arrays,
additional-property keys, and the recursive "any JSON value" rules."""

from __future__ import annotations

import functools
import json
from typing import Any

from .ir import EMPTY, Bytes, Exclude, Expr, Ref, alt, byte_set, literal, optional, repeat, seq, star
from .json_strings import JSON_CHAR, QUOTE, SAFE_CHAR
from .numbers import number_range

ANY_VALUE, ANY_OBJECT, ANY_ARRAY = "json_value", "json_object", "json_array"
WHITESPACE = Bytes(byte_set((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20)))


def whitespace(options) -> Expr:
    return EMPTY if options.whitespace == "compact" else repeat(WHITESPACE, 0, options.max_whitespace)


def dump(value: Any) -> str:
    """The compact JSON text of a constant (how enum/const values are written)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_type_matches(value: Any, types: list[str]) -> bool:
    kind = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value))
    if kind is None and isinstance(value, int | float):
        if "number" in types:
            return True
        return "integer" in types and float(value).is_integer()
    return kind in types


def member(key: Expr, value: Expr, ws: Expr) -> Expr:
    return seq(key, ws, literal(":"), ws, value)


def members(pairs: list[tuple[Expr, bool]], extra: Expr | None, ws: Expr) -> Expr:
    """Object members in declaration order; optional ones may be left out, commas only between members;
    `extra` (additional properties) may follow the declared ones."""
    comma = seq(ws, literal(","), ws)
    tail_extra = star(seq(comma, extra)) if extra is not None else EMPTY
    tails: list[Expr] = [tail_extra]  # tails[k]: members k.. after at least one member was written
    for pair, required in reversed(pairs):
        step = seq(comma, pair)
        tails.insert(0, seq(step if required else optional(step), tails[0]))
    none_yet: Expr = optional(seq(extra, tail_extra)) if extra is not None else EMPTY
    for k in range(len(pairs) - 1, -1, -1):
        pair, required = pairs[k]
        first_here = seq(pair, tails[k + 1])
        none_yet = first_here if required else alt(first_here, none_yet)
    return none_yet


def key_except(known: list[str]) -> Expr:
    """An additional property's key: a string of unescaped characters that is not a declared name."""
    return Exclude(seq(QUOTE, star(SAFE_CHAR), QUOTE), frozenset(k.encode() for k in known))


def elements(prefix: list[Expr], rest: Expr | None, low: int, high: int | None, ws: Expr) -> Expr | None:
    """Array elements: the prefix items in order, then `rest` items, low..high elements in all."""
    comma = seq(ws, literal(","), ws)

    def after(i: int) -> Expr | None:  # elements i.., when i elements were written
        if i >= len(prefix):
            if rest is None:
                return EMPTY if low <= i else None
            more_low = max(low - i, 0)
            more_high = None if high is None else high - i
            if more_high is not None and more_high < more_low:
                return None
            if i == 0:
                if more_high == 0:
                    return EMPTY
                body = seq(
                    rest, repeat(seq(comma, rest), max(more_low - 1, 0), None if more_high is None else more_high - 1)
                )
                return body if more_low > 0 else optional(body)
            return repeat(seq(comma, rest), more_low, more_high)
        if high is not None and i >= high:
            return EMPTY if low <= i else None
        nxt = after(i + 1)
        here = None if nxt is None else seq(comma if i else EMPTY, prefix[i], nxt)
        if low <= i:
            return optional(here) if here is not None else EMPTY
        return here

    return after(0)


def add_any_value_rules(rules: dict[str, Expr], ws: Expr) -> None:
    """json_value / json_object / json_array: any JSON text (recursive rules)."""
    if ANY_VALUE not in rules:
        rules.update(_any_value_rules(ws))


@functools.lru_cache(maxsize=16)
def _any_value_rules(ws: Expr) -> dict[str, Expr]:
    """The rules for one whitespace setting, built once per process (every JSON grammar adds them;
    expressions are immutable, and callers copy the dict's entries into their own rules)."""
    string = seq(QUOTE, star(JSON_CHAR), QUOTE)
    comma = seq(ws, literal(","), ws)
    pair = seq(string, ws, literal(":"), ws, Ref(ANY_VALUE))
    rules: dict[str, Expr] = {}
    rules[ANY_OBJECT] = seq(literal("{"), ws, optional(seq(pair, star(seq(comma, pair)))), ws, literal("}"))
    rules[ANY_ARRAY] = seq(
        literal("["), ws, optional(seq(Ref(ANY_VALUE), star(seq(comma, Ref(ANY_VALUE))))), ws, literal("]")
    )
    rules[ANY_VALUE] = alt(
        Ref(ANY_OBJECT),
        Ref(ANY_ARRAY),
        string,
        number_range(None, None),
        literal("true"),
        literal("false"),
        literal("null"),
    )
    return rules
