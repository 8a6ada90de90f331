"""Random JSON-Schema-like documents (hypothesis): valid and malformed keywords, nested and referencing;
the compiler's fuzz tests and the native compiler's differential test draw from them."""

from __future__ import annotations

from hypothesis import strategies as st

KEYWORDS = [
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "format", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "not", "description", "multipleOf",
]  # fmt: skip
TYPES = ["object", "array", "string", "number", "integer", "boolean", "null", "nope"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(TYPES), st.text(max_size=8), st.sampled_from(["#", "#/$defs/a", "#/properties/x", "date", "uuid", "[a-z]+"]),
)  # fmt: skip
schemas = st.recursive(
    scalars | st.just({}),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYWORDS), inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "x"]), inner, max_size=3).map(lambda d: {"type": "object", "properties": d}),
        st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2).map(lambda d: {"$defs": d, "$ref": "#/$defs/a"}),
    ),
    max_leaves=12,
)  # fmt: skip

# Well-formed schemas only (every one compiles unless it is too large): the differential tests compare
# compilers on these, where most of `schemas` above stops at a keyword error before any automaton exists.
_strings = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("string")}, optional={"minLength": st.integers(0, 3), "maxLength": st.integers(3, 12)}
    ),
    st.sampled_from(["date", "uuid", "email", "time"]).map(lambda name: {"type": "string", "format": name}),
    st.sampled_from(["^[a-z]+$", "^[0-9]{2,4}$", "^(ab|cd)*x?$", "^[A-Z][a-z]*$"]).map(
        lambda p: {"type": "string", "pattern": p}
    ),
)
_integers = st.fixed_dictionaries(
    {"type": st.just("integer")}, optional={"minimum": st.integers(-50, 0), "maximum": st.integers(1, 300)}
)
_numbers = st.fixed_dictionaries(
    {"type": st.just("number")}, optional={"minimum": st.integers(-5, 0), "exclusiveMaximum": st.integers(1, 99)}
)
_leaves = st.one_of(
    _strings,
    _integers,
    _numbers,
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.sampled_from(["a", "b", "on", "off", 1, 2.5, None, True]), min_size=1, max_size=4, unique=True).map(
        lambda values: {"enum": values}
    ),
    st.sampled_from(["x", 7, False]).map(lambda value: {"const": value}),
)
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "name", "id"]), inner, min_size=1, max_size=3).flatmap(
            lambda properties: st.fixed_dictionaries(
                {
                    "type": st.just("object"),
                    "properties": st.just(properties),
                    "required": st.lists(st.sampled_from(sorted(properties)), unique=True),
                    "additionalProperties": st.just(False),
                }
            )
        ),
        st.builds(
            lambda items, low: {"type": "array", "items": items, "minItems": low, "maxItems": low + 2},
            inner,
            st.integers(0, 2),
        ),
        st.lists(inner, min_size=2, max_size=3).map(lambda options: {"anyOf": options}),
        inner.map(lambda item: {"type": "array", "items": item}),
    ),
    max_leaves=6,
)
valid_schemas = st.one_of(
    _trees,
    _trees.map(lambda tree: {"$defs": {"node": {"anyOf": [tree, {"type": "array", "items": {"$ref": "#/$defs/node"}}]}}, "$ref": "#/$defs/node"}),
)  # fmt: skip
