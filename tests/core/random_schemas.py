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
