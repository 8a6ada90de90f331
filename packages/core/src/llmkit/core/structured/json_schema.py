"""JSON Schema -> grammar IR. Unsupported keywords are errors naming the keyword and its JSON pointer."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from . import json_values as V
from .ir import EMPTY, Expr, Grammar, GrammarError, Ref, alt, literal, repeat, seq, star
from .json_strings import FORMATS, JSON_CHAR, QUOTE, format_string, pattern_string
from .numbers import integer_range, number_range

ANNOTATIONS = {
    "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "$defs", "definitions", "contentEncoding", "contentMediaType",
}  # fmt: skip
COMBINATORS = {"anyOf", "oneOf", "allOf", "$ref", "enum", "const", "type"}
BY_TYPE = {
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "prefixItems", "minItems", "maxItems", "additionalItems", "uniqueItems"},
    "string": {"minLength", "maxLength", "pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "boolean": set(),
    "null": set(),
}
KNOWN = ANNOTATIONS | COMBINATORS | set().union(*BY_TYPE.values())
_NUMBER = (int, float)
VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "properties": (dict,), "required": (list,), "additionalProperties": (bool, dict), "items": (bool, dict, list),
    "prefixItems": (list,), "additionalItems": (bool, dict), "minItems": (int,), "maxItems": (int,),
    "uniqueItems": (bool,), "minLength": (int,), "maxLength": (int,), "pattern": (str,), "format": (str,),
    "minimum": _NUMBER, "maximum": _NUMBER, "exclusiveMinimum": (*_NUMBER, bool), "exclusiveMaximum": (*_NUMBER, bool),
    "anyOf": (list,), "oneOf": (list,), "allOf": (list,), "$ref": (str,), "enum": (list,), "type": (str, list),
    "$defs": (dict,), "definitions": (dict,),
}  # fmt: skip
INLINE_REPEAT_LIMIT = 8  # bounded repetitions of larger items call the item's rule instead of copying it


@dataclasses.dataclass(frozen=True)
class JsonOptions:
    """`whitespace`: "flexible" (the default: runs of at most `max_whitespace` spaces/newlines/tabs
    between tokens) or "compact" (none). Flexible is the default because models write JSON with
    whitespace: on the default model it extracted 79% of fields right against compact's 60%
    (benchmarks/json_whitespace.py). `strict`: OpenAI strict mode (every object closed and complete)."""

    whitespace: str = "flexible"
    max_whitespace: int = 8
    strict: bool = False

    def __post_init__(self) -> None:
        if self.whitespace not in ("compact", "flexible"):
            raise GrammarError(f"whitespace must be 'compact' or 'flexible', got {self.whitespace!r}")
        if not 1 <= self.max_whitespace <= 64:
            raise GrammarError(f"max_whitespace must be in [1, 64], got {self.max_whitespace}")


def pointer(base: str, *parts: str | int) -> str:
    for part in parts:
        base += "/" + str(part).replace("~", "~0").replace("/", "~1")
    return base


class SchemaCompiler:
    def __init__(self, root: Any, options: JsonOptions, rules: dict[str, Expr] | None = None, prefix: str = ""):
        self.root, self.options, self.prefix = root, options, prefix
        self.rules: dict[str, Expr] = {} if rules is None else rules
        self.ws = V.whitespace(options)
        self.called: set[str] = set()

    def compile(self) -> Grammar:
        self.rules["root"] = self.schema(self.root, "#")  # whitespace between tokens, none around the value
        V.add_any_value_rules(self.rules, self.ws)
        return Grammar(self.rules, "root")

    def fail(self, where: str, message: str) -> GrammarError:
        return GrammarError(f"{message} (at JSON pointer {where!r})")

    def schema(self, node: Any, where: str) -> Expr:
        if node is True or node == {}:
            return Ref(V.ANY_VALUE)
        if node is False:
            raise self.fail(where, "schema false matches no value")
        if not isinstance(node, dict):
            raise self.fail(where, f"a schema must be an object or a boolean, got {type(node).__name__}")
        for key, value in node.items():
            if key not in KNOWN:
                raise self.fail(pointer(where, key), f"unsupported JSON Schema keyword {key!r}")
            expected = VALUE_TYPES.get(key)
            if expected is not None and (
                not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)
            ):
                names = " or ".join(sorted({"number" if t in _NUMBER else t.__name__ for t in expected}))
                raise self.fail(pointer(where, key), f"{key} must be {names}, got {type(value).__name__}")
        if "required" in node and not all(isinstance(r, str) for r in node["required"]):
            raise self.fail(pointer(where, "required"), "required must list property names (strings)")
        constraining = {k for k in node if k not in ANNOTATIONS}
        if "$ref" in node:
            if constraining - {"$ref"}:
                raise self.fail(
                    where, f"$ref beside other keywords ({', '.join(sorted(constraining - {'$ref'}))}) is not supported"
                )
            return self.reference(node["$ref"], pointer(where, "$ref"))
        if "allOf" in node:
            return self.schema(self.merge_all_of(node, where), where)
        for key in ("anyOf", "oneOf"):
            if key in node:
                branches = node[key]
                if not isinstance(branches, list) or not branches:
                    raise self.fail(pointer(where, key), f"{key} must be a non-empty array")
                if constraining - {key}:
                    raise self.fail(
                        where,
                        f"{key} beside other keywords ({', '.join(sorted(constraining - {key}))}) is not supported",
                    )
                return alt(*(self.schema(b, pointer(where, key, i)) for i, b in enumerate(branches)))
        types = self.types(node, where)
        if "const" in node:
            return literal(V.dump(node["const"]))
        if "enum" in node:
            values = node["enum"]
            if not isinstance(values, list) or not values:
                raise self.fail(pointer(where, "enum"), "enum must be a non-empty array")
            values = [v for v in values if V.json_type_matches(v, types)]
            if not values:
                raise self.fail(pointer(where, "enum"), "no enum value has the schema's type")
            return alt(*(literal(V.dump(v)) for v in values))
        return alt(*(self.typed(t, node, where) for t in types))

    def types(self, node: dict, where: str) -> list[str]:
        declared = node.get("type")
        if declared is None:
            present = [t for t, keys in BY_TYPE.items() if keys & node.keys() and t != "integer"]
            return present or list(BY_TYPE)
        declared = [declared] if isinstance(declared, str) else declared
        if not isinstance(declared, list) or not declared or any(t not in BY_TYPE for t in declared):
            raise self.fail(
                pointer(where, "type"), f"type must name JSON types ({', '.join(BY_TYPE)}), got {node['type']!r}"
            )
        if "number" in declared and "integer" in declared:
            declared = [t for t in declared if t != "integer"]
        return list(dict.fromkeys(declared))

    def typed(self, kind: str, node: dict, where: str) -> Expr:
        if kind == "object":
            return self.object(node, where)
        if kind == "array":
            return self.array(node, where)
        if kind == "string":
            return self.string(node, where)
        if kind in ("number", "integer"):
            return self.number(kind, node, where)
        return literal("null") if kind == "null" else alt(literal("true"), literal("false"))

    def reference(self, ref: Any, where: str) -> Expr:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self.fail(where, f"only local references ('#/...') are supported, got {ref!r}")
        name = f"{self.prefix}ref:{ref}"
        if name not in self.rules:
            self.rules[name] = EMPTY  # a recursive reference inside finds the name while the rule is built
            self.rules[name] = self.schema(self.resolve(ref, where), ref)
        return Ref(name)

    def resolve(self, ref: str, where: str) -> Any:
        node = self.root
        if ref in ("#", "#/"):
            return node
        if not ref.startswith("#/"):
            raise self.fail(where, f"anchor references like {ref!r} are not supported")
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.fail(where, f"reference {ref!r} points to nothing")
        return node

    def merge_all_of(self, node: dict, where: str) -> dict:
        parts = node["allOf"]
        if not isinstance(parts, list) or not parts:
            raise self.fail(pointer(where, "allOf"), "allOf must be a non-empty array")
        merged: dict[str, Any] = {k: v for k, v in node.items() if k not in ("allOf", "additionalProperties")}
        closed: list[tuple[set[str], str]] = []  # each closed member's own property names, and where it is
        members = [(node, where)] + [(p, pointer(where, "allOf", i)) for i, p in enumerate(parts)]
        for part, here in members:
            while isinstance(part, dict) and set(part) - ANNOTATIONS == {"$ref"}:
                part = self.resolve(part["$ref"], here)
            if not isinstance(part, dict):
                raise self.fail(here, "allOf members must be object schemas")
            extra = part.get("additionalProperties", True)
            if extra is False:
                closed.append((set(part.get("properties", {})), here))
            elif extra is not True:
                raise self.fail(
                    pointer(here, "additionalProperties"), "allOf with an additionalProperties schema is not supported"
                )
            if part is node:
                continue
            for key, value in part.items():
                if key in ANNOTATIONS or key == "additionalProperties":
                    continue
                if key == "properties":
                    props = dict(merged.get("properties", {}))
                    for name, sub in value.items():
                        if name in props and props[name] != sub:
                            raise self.fail(
                                pointer(here, "properties", name),
                                f"allOf gives property {name!r} two different schemas",
                            )
                        props[name] = sub
                    merged["properties"] = props
                elif key == "required":
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                elif key in merged and merged[key] != value:
                    raise self.fail(pointer(here, key), f"allOf members disagree on {key!r}")
                else:
                    merged[key] = value
        if closed:  # additionalProperties: false admits only the member's own properties, in every member
            allowed = set.intersection(*(names for names, _ in closed))
            for name in merged.get("required", []):
                if name not in allowed:
                    where_closed = next(w for names, w in closed if name not in names)
                    raise self.fail(
                        where_closed,
                        f"allOf admits no value: required property {name!r} is excluded by additionalProperties: false here",
                    )
            merged["properties"] = {k: v for k, v in merged.get("properties", {}).items() if k in allowed}
            merged["additionalProperties"] = False
        if merged.get("type", "object") != "object":
            raise self.fail(where, "allOf is supported for object schemas only")
        return merged

    def object(self, node: dict, where: str) -> Expr:
        properties = node.get("properties", {})
        required = node.get("required", [])
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise self.fail(where, "properties must be an object and required an array")
        extra = node.get("additionalProperties", not self.options.strict)
        if self.options.strict:
            if node.get("additionalProperties") is not False:
                raise self.fail(where, "strict mode needs additionalProperties: false on every object")
            if set(properties) - set(required):
                raise self.fail(
                    where,
                    f"strict mode needs every property required; optional: {sorted(set(properties) - set(required))}",
                )
        extra_value = None if extra is False else self.schema(extra, pointer(where, "additionalProperties"))
        names = list(properties) + [r for r in required if r not in properties]
        pairs = []
        for name in names:
            sub = properties.get(name, extra if extra is not False else None)
            if sub is None:
                raise self.fail(
                    pointer(where, "required"),
                    f"required property {name!r} is not allowed by additionalProperties: false",
                )
            value = self.schema(sub, pointer(where, "properties", name))
            pairs.append((V.member(literal(V.dump(name)), value, self.ws), name in required))
        extra_pair = None
        if extra_value is not None:
            extra_pair = V.member(V.key_except([V.dump(n) for n in names]), extra_value, self.ws)
        return seq(literal("{"), self.ws, V.members(pairs, extra_pair, self.ws), self.ws, literal("}"))

    def array(self, node: dict, where: str) -> Expr:
        if node.get("uniqueItems") is True:
            raise self.fail(pointer(where, "uniqueItems"), "unsupported JSON Schema keyword 'uniqueItems' (true)")
        prefix = node.get("prefixItems", [])
        items = node.get("items", True)
        if isinstance(items, list):  # draft-4..7 tuple form
            prefix, items = items, node.get("additionalItems", True)
        elif "additionalItems" in node:
            raise self.fail(pointer(where, "additionalItems"), "additionalItems needs items to be an array")
        low, high = self.count(node, "minItems", where), self.count(node, "maxItems", where)
        if high is not None and high < low:
            raise self.fail(where, "maxItems is below minItems")
        elements = [self.schema(s, pointer(where, "prefixItems", i)) for i, s in enumerate(prefix)]
        rest = None if items is False else self.schema(items, pointer(where, "items"))
        if rest is not None and high is not None and high - len(elements) > INLINE_REPEAT_LIMIT:
            rest = self.called_rule(pointer(where, "items"), rest)
        body = V.elements(elements, rest, low, high, self.ws)
        if body is None:
            raise self.fail(where, "no array length satisfies minItems/maxItems and the item schemas")
        return seq(literal("["), self.ws, body, self.ws, literal("]"))

    def called_rule(self, name: str, expr: Expr) -> Expr:
        rule = f"{self.prefix}items:{name}"
        self.rules[rule] = expr
        self.called.add(rule)
        return Ref(rule)

    def string(self, node: dict, where: str) -> Expr:
        low, high = self.count(node, "minLength", where), self.count(node, "maxLength", where)
        shaped = [k for k in ("pattern", "format") if k in node]
        if len(shaped) == 2:
            raise self.fail(where, "pattern together with format is not supported")
        if shaped and ("minLength" in node or "maxLength" in node):
            raise self.fail(where, f"{shaped[0]} together with minLength/maxLength is not supported")
        if "pattern" in node:
            return pattern_string(node["pattern"], pointer(where, "pattern"))
        if "format" in node:
            if node["format"] not in FORMATS:
                raise self.fail(
                    pointer(where, "format"),
                    f"unsupported string format {node['format']!r}; supported: {', '.join(FORMATS)}",
                )
            return format_string(node["format"], pointer(where, "format"))
        if high is not None and high < low:
            raise self.fail(where, "maxLength is below minLength")
        return seq(QUOTE, repeat(JSON_CHAR, low, high) if (low, high) != (0, None) else star(JSON_CHAR), QUOTE)

    def count(self, node: dict, key: str, where: str) -> int | None:
        value = node.get(key, 0 if key.startswith("min") else None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise self.fail(pointer(where, key), f"{key} must be a non-negative integer, got {value!r}")
        if value is not None and value > 100_000:
            raise self.fail(pointer(where, key), f"{key} above 100000 is not supported")
        return value

    def number(self, kind: str, node: dict, where: str) -> Expr:
        lower = self.bound(node, "minimum", "exclusiveMinimum", kind, where, math.ceil)
        upper = self.bound(node, "maximum", "exclusiveMaximum", kind, where, math.floor)
        if kind == "integer":
            low = None if lower is None else lower[0] + (1 if lower[1] else 0)
            high = None if upper is None else upper[0] - (1 if upper[1] else 0)
            expr = integer_range(low, high)
        else:
            expr = number_range(lower, upper)
        if expr is None:
            raise self.fail(where, "no number satisfies the bounds")
        return expr

    def bound(
        self, node: dict, inclusive: str, exclusive: str, kind: str, where: str, to_int
    ) -> tuple[int, bool] | None:
        found: list[tuple[float, bool]] = []
        for key, is_exclusive in ((inclusive, False), (exclusive, True)):
            value = node.get(key)
            if isinstance(value, bool):  # draft 4: exclusiveMinimum: true applies to minimum
                if value and inclusive in node:
                    found = [(node[inclusive], True)]
                continue
            if value is None:
                continue
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise self.fail(pointer(where, key), f"{key} must be a finite number, got {value!r}")
            found.append((value, is_exclusive))
        if not found:
            return None
        tight = max(found) if inclusive == "minimum" else min(found, key=lambda b: (b[0], not b[1]))
        value, is_exclusive = tight
        if value != int(value):
            if kind == "number":
                raise self.fail(
                    pointer(where, inclusive), f"non-integer bounds on numbers are not supported ({inclusive} {value})"
                )
            return to_int(value), False
        return int(value), is_exclusive


def compile_json_schema(schema: Any, options: JsonOptions | None = None) -> Grammar:
    if isinstance(schema, str | bytes):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as err:
            raise GrammarError(f"the schema is not valid JSON: {err}") from None
    compiler = SchemaCompiler(schema, options or JsonOptions())
    grammar = compiler.compile()
    grammar.called |= compiler.called
    return grammar
