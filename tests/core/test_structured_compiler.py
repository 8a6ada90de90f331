"""The structured-output compiler: JSON Schema, regex and GBNF front ends checked on byte strings with the
reference Earley chart; unsupported keywords are errors naming the keyword and its JSON pointer."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from core.grammar_tables import canonical
from llmkit.core.structured import GrammarCompiler, GrammarError, JsonOptions, StructuredOutput, compile_structured
from llmkit.core.structured.earley import EarleyChart


def matches(grammar, text: str | bytes) -> bool:
    chart = EarleyChart(grammar)
    data = text.encode() if isinstance(text, str) else text
    return chart.accepts_bytes(data) and chart.can_finish()


def schema_grammar(schema, **options):
    return compile_structured(StructuredOutput("json_schema", schema, JsonOptions(**options)))


CASES = [
    ({"type": "integer", "minimum": -5, "maximum": 120}, ["-5", "0", "7", "120"], ["-6", "121", "007", "1.0", "-0"]),
    ({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}, ["1", "9"], ["0", "10"]),
    ({"type": "integer", "minimum": 1.5, "maximum": 3.5}, ["2", "3"], ["1", "4"]),
    ({"type": "number", "minimum": 0, "maximum": 1}, ["0", "1", "0.5", "1.000"], ["1.1", "-0.5", "1.01", "2"]),
    ({"type": "number", "exclusiveMinimum": 0, "maximum": 3}, ["0.1", "3", "3.0"], ["0", "0.0", "3.1"]),
    ({"type": "number"}, ["-1.5e-3", "0", "12.25E+2"], ["01", "1.", ".5", "+1"]),
    (
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "boolean"}}, "required": ["b"], "additionalProperties": False},
        ['{"b":true}', '{"a":"x","b":false}'],
        ['{"a":"x"}', '{"b":true,}', "{}", '{"b":true,"a":"x"}', '{"b":true,"c":1}'],
    ),
    (
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        ["{}", '{"a":1}', '{"a":1,"zz":[1,{"q":null}]}', '{"x":"y"}'],
        ['{"a":"s"}', '{"a":1,"a":2}', "{,}"],
    ),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3}, ["[1]", "[1,2,3]"], ["[]", "[1,2,3,4]", "[1,]"]),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "null"}], "items": False}, ['["a",null]', "[]", '["a"]'], ['[null]', '["a",null,1]']),
    ({"type": "string", "minLength": 2, "maxLength": 4}, ['"ab"', '"a\\nbc"', '"éé"', '"\\u00e9x"'], ['"a"', '"abcde"', '"a\\ud800"']),
    ({"type": "string", "format": "date"}, ['"2024-02-29"', '"2023-12-31"'], ['"2023-02-29"', '"2023-04-31"', '"2023-13-01"']),
    ({"type": "string", "format": "date-time"}, ['"2024-01-02T03:04:05Z"', '"2024-01-02T03:04:05.123+05:30"'], ['"2024-01-02 03:04:05Z"']),
    ({"type": "string", "format": "uuid"}, ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123e4567e89b12d3a456426614174000"']),
    ({"type": "string", "format": "email"}, ['"a.b@example.com"'], ['"a@b"', '"@example.com"']),
    ({"type": "string", "pattern": "^[a-z]+\\d$"}, ['"abc1"'], ['"abc"', '"1"', '"Abc1"']),
    ({"type": "string", "pattern": "ab"}, ['"xxabyy"', '"ab"'], ['"a b"']),
    ({"type": "string", "pattern": '^"\\\\$'}, ['"\\"\\\\"'], ['"x"']),
    ({"enum": ["a", 1, None, {"k": [1]}]}, ['"a"', "1", "null", '{"k":[1]}'], ['"b"', "2"]),
    ({"const": "fixed"}, ['"fixed"'], ['"other"']),
    ({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]}, ["12", '"ab"'], ['"abc"', "true"]),
    ({"type": ["string", "null"]}, ['"x"', "null"], ["1"]),
    (
        {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
        ['{"a":1,"b":2}', '{"a":1,"b":2,"c":3}'],
        ['{"a":1}', '{"b":2,"a":1}', '{"a":1,"b":"x"}'],
    ),
    (
        {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}, {"properties": {"b": {"type": "integer"}}}]},
        ['{"a":1,"b":2}', '{"a":1}'],
        ['{"a":1,"b":2,"c":3}'],
    ),
    (
        {
            "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["v", "next"], "additionalProperties": False}},
            "$ref": "#/$defs/node",
        },
        ['{"v":1,"next":null}', '{"v":1,"next":{"v":2,"next":{"v":3,"next":null}}}'],
        ['{"v":1}', '{"v":1,"next":{"v":2}}'],
    ),
    ({}, ['{"a":[1,2,{"b":null}]}', '"x"', "1.5e3", "[]", "true"], ["{a}", "[1,]", "", "nul"]),
    ({"type": "boolean"}, ["true", "false"], ["True", "1"]),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "good", "bad"), CASES, ids=[json.dumps(c[0])[:40] for c in CASES])
def test_schema_accepts_exactly_its_instances(schema, good, bad):
    grammar = schema_grammar(schema)
    for text in good:
        assert matches(grammar, text), text
    for text in bad:
        assert not matches(grammar, text), text


def test_integer_bounds_are_exact_over_a_whole_range():
    grammar = schema_grammar({"type": "integer", "minimum": -137, "maximum": 2048})
    for value in range(-300, 2300):
        assert matches(grammar, str(value)) == (-137 <= value <= 2048), value


def test_number_bounds_reject_out_of_range_decimals():
    grammar = schema_grammar({"type": "number", "minimum": -2, "exclusiveMaximum": 5})
    for text, inside in [("-2", True), ("-2.0", True), ("-2.01", False), ("4.999", True), ("5", False), ("-0.5", True)]:
        assert matches(grammar, text) == inside, text


def test_flexible_whitespace_is_bounded():
    grammar = schema_grammar(
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        whitespace="flexible",
        max_whitespace=4,
    )
    assert matches(grammar, '{ "a" : 1 }')
    assert matches(grammar, '{\n  "a": 1\n}')
    assert not matches(grammar, '{      "a":1}')


def test_strict_mode_requires_closed_complete_objects():
    with pytest.raises(GrammarError, match="additionalProperties"):
        schema_grammar({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, strict=True)
    with pytest.raises(GrammarError, match="required"):
        schema_grammar(
            {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}, strict=True
        )
    grammar = schema_grammar(
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False},
        strict=True,
    )
    assert matches(grammar, '{"a":3}')


@pytest.mark.parametrize(
    ("schema", "keyword", "where"),
    [
        ({"type": "object", "patternProperties": {"x": {}}}, "patternProperties", "#/patternProperties"),
        ({"properties": {"a": {"type": "number", "multipleOf": 3}}}, "multipleOf", "#/properties/a/multipleOf"),
        ({"items": {"not": {"type": "string"}}}, "not", "#/items/not"),
        ({"anyOf": [{"type": "string", "if": {}}]}, "if", "#/anyOf/0/if"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems", "#/uniqueItems"),
        ({"type": "string", "format": "hostname"}, "hostname", "#/format"),
    ],
)
def test_unsupported_keyword_names_keyword_and_pointer(schema, keyword, where):
    with pytest.raises(GrammarError) as err:
        schema_grammar(schema)
    assert keyword in str(err.value) and repr(where) in str(err.value)


@pytest.mark.parametrize(
    "schema",
    [
        False,
        {"type": "integer", "minimum": 5, "maximum": 1},
        {"type": "wat"},
        {"$ref": "#/missing"},
        {"$ref": "http://x/y"},
        {"enum": []},
        {"type": "string", "minLength": -1},
    ],
)
def test_impossible_or_malformed_schemas_are_clear_errors(schema):
    with pytest.raises(GrammarError):
        schema_grammar(schema)


def test_regex_is_matched_against_the_whole_output():
    grammar = compile_structured(StructuredOutput("regex", r"(\d{3})-[A-Z]{2}|none"))
    assert matches(grammar, "123-AB") and matches(grammar, "none")
    assert not matches(grammar, "123-AB ") and not matches(grammar, "12-AB")
    unicode = compile_structured(StructuredOutput("regex", "[α-ω]+!?"))
    assert matches(unicode, "αβγ!") and not matches(unicode, "abc")


@pytest.mark.parametrize("pattern", ["(a", "a)", "[z-a]", "a{3,1}", "(?=a)", r"\1", "a**", "x{2,3}+"])
def test_bad_regexes_are_errors(pattern):
    with pytest.raises(GrammarError):
        compile_structured(StructuredOutput("regex", pattern))


def test_gbnf_with_recursion_comments_and_repetition():
    text = r"""
root ::= expr   # an arithmetic expression
expr ::= term ([+-] term)*
term ::= num | "(" expr ")"
num  ::= [0-9]{1,3}
"""
    grammar = compile_structured(StructuredOutput("grammar", text))
    for sample, ok in [("1+2", True), ("(1+(22-3))", True), ("(1+", False), ("1234", False), ("((7))", True)]:
        assert matches(grammar, sample) == ok, sample


def test_gbnf_llama_cpp_json_grammar_parses():
    text = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws
string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
"""
    grammar = compile_structured(StructuredOutput("grammar", text))
    assert matches(grammar, '{"a": [1, 2.5, "x"], "b": {"c": null}}')
    assert not matches(grammar, '{"a": [1, 2.5, "x"],}')


@pytest.mark.parametrize(
    "text",
    ['root ::= "a', "root ::= [a", "rot ::= x", "root ::= undefined", "root ::= (a", 'root ::= "\\q"', "root := x"],
)
def test_bad_grammars_name_the_problem(text):
    with pytest.raises(GrammarError):
        compile_structured(StructuredOutput("grammar", text))


def test_tool_call_grammar_is_free_text_or_valid_calls():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                    "additionalProperties": False,
                },
            },
        },
    ]
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    two = call + '\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    auto = compile_structured(StructuredOutput("tool_calls", {"tools": tools, "tool_choice": "auto"}))
    assert matches(auto, call) and matches(auto, two) and matches(auto, "It is sunny.") and matches(auto, "")
    assert not matches(auto, "Sure: " + call)
    assert not matches(auto, call.replace("Paris", "1").replace('"1"', "1"))
    required = compile_structured(StructuredOutput("tool_calls", {"tools": tools, "tool_choice": "required"}))
    assert matches(required, two) and not matches(required, "It is sunny.")
    named = compile_structured(
        StructuredOutput(
            "tool_calls",
            {"tools": tools, "tool_choice": {"type": "function", "function": {"name": "add"}}, "parallel": False},
        )
    )
    assert not matches(named, call) and not matches(named, two)
    assert matches(named, '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>')
    with pytest.raises(GrammarError, match="nope"):
        compile_structured(
            StructuredOutput(
                "tool_calls", {"tools": tools, "tool_choice": {"type": "function", "function": {"name": "nope"}}}
            )
        )


def test_compiler_caches_by_content_hash_and_caches_errors():
    compiler = GrammarCompiler()
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    first = compiler.compile(StructuredOutput("json_schema", schema))
    again = compiler.compile(StructuredOutput("json_schema", json.loads(json.dumps(schema))))
    assert first is again and compiler.hits == 1 and compiler.misses == 1
    assert compiler.cached(StructuredOutput("json_schema", schema)) is first
    bad = StructuredOutput("json_schema", {"type": "string", "format": "ipv9"})
    for _ in range(2):
        with pytest.raises(GrammarError, match="ipv9"):
            compiler.compile(bad)
    assert compiler.misses == 2
    compiler.shutdown()


def test_compiler_prepares_each_new_grammar_once_on_its_thread_and_survives_a_failing_prepare():
    seen = []

    def prepare(grammar):
        seen.append((grammar, threading.current_thread().name))
        if len(seen) == 2:
            raise RuntimeError("prepare broke")

    compiler = GrammarCompiler(prepare=prepare)
    spec = StructuredOutput("json_schema", {"type": "integer"})
    grammar = compiler.compile(spec)
    assert compiler.compile(spec) is grammar and seen == [(grammar, seen[0][1])]
    assert seen[0][1].startswith("llmkit-grammar")
    other = StructuredOutput("json_schema", {"type": "boolean"})
    with pytest.raises(RuntimeError, match="prepare broke"):
        compiler.compile(other)
    assert compiler.cached(other) is None  # not cached half-prepared; the next request compiles again
    assert compiler.compile(other).num_states > 0 and len(seen) == 3
    compiler.shutdown()


def test_compiler_hands_a_grammar_out_before_warming_it_on_a_thread_of_its_own():
    """`warm` (the engine classifies every state's tokens there) runs after the grammar is handed out and
    off the compiler's thread: neither the request nor the next compilation waits for it."""
    release, warmed = threading.Event(), []

    def warm(grammar):
        release.wait(30)
        warmed.append((grammar, threading.current_thread().name))

    compiler = GrammarCompiler(prepare=lambda grammar: None, warm=warm)
    first = compiler.compile(StructuredOutput("json_schema", {"type": "integer"}))
    second = compiler.compile(StructuredOutput("json_schema", {"type": "boolean"}))  # the first still warming
    assert compiler.compile(StructuredOutput("json_schema", {"type": "integer"})) is first  # a hit: no warming
    with pytest.raises(GrammarError):
        compiler.compile(StructuredOutput("json_schema", {"type": "string", "format": "ipv9"}))
    assert warmed == []
    release.set()
    deadline = time.monotonic() + 30
    while len(warmed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [grammar for grammar, _ in warmed] == [first, second]
    assert all(name.startswith("llmkit-grammar-warm") for _, name in warmed)
    compiler.shutdown()


def test_a_failing_warm_is_logged_and_the_grammar_stays_usable(caplog):
    done = threading.Event()

    def warm(grammar):
        done.set()
        raise RuntimeError("warm broke")

    def logged() -> bool:
        return any("warming a compiled grammar failed" in r.message for r in caplog.records)

    compiler = GrammarCompiler(warm=warm)
    spec = StructuredOutput("json_schema", {"type": "integer"})
    with caplog.at_level(logging.ERROR, logger="llmkit.core.structured.compiler"):
        grammar = compiler.compile(spec)
        assert done.wait(30)
        deadline = time.monotonic() + 30
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert logged()
    assert compiler.cached(spec) is grammar and compiler.compile(spec) is grammar
    compiler.shutdown()


def test_bounded_strings_compile_to_one_dfa():
    grammar = schema_grammar({"type": "string", "maxLength": 300})
    assert len(grammar.rule_names) == 1 and matches(grammar, '"' + "x" * 300 + '"')
    assert not matches(grammar, '"' + "x" * 301 + '"')


REPEATED = [
    {"type": "string", "minLength": 3, "maxLength": 40},
    {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 6},
    {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}, "additionalProperties": True},
    {"type": "string", "pattern": "^(ab|c?){2,5}x{0,3}$"},
]
NFA_FIELDS = (
    "size",
    "eps_src",
    "eps_dst",
    "byte_src",
    "byte_mask",
    "masks",
    "byte_dst",
    "call_src",
    "call_rule",
    "call_dst",
)


@pytest.mark.parametrize("numpy_above", [0, 10**9], ids=["numpy", "python"])
@pytest.mark.parametrize("schema", REPEATED, ids=range(len(REPEATED)))
def test_replayed_repetitions_build_the_nfa_that_emission_copy_by_copy_builds(schema, numpy_above, monkeypatch):
    from llmkit.core.structured import automata, nfa
    from llmkit.core.structured.compiler import to_grammar

    monkeypatch.setattr(nfa, "NUMPY_REPLAY_EDGES", numpy_above)  # either way of shifting the copies
    monkeypatch.setattr(automata._Builder, "emit", automata._Builder.emit_new)  # no piece replayed from before
    grammar = to_grammar(StructuredOutput("json_schema", schema))
    replayed = automata.rule_nfas(grammar)

    def copy_by_copy(self, nfa, item, entry, count):
        ends = [entry]
        for _ in range(count):
            ends.append(self.emit(nfa, item, ends[-1]))
        return ends

    monkeypatch.setattr(automata._Builder, "emit_copies", copy_by_copy)
    assert automata.MIN_REPLAYED_COPIES <= 5
    emitted = automata.rule_nfas(grammar)
    assert emitted.nfa.size > 30
    for field in NFA_FIELDS:
        assert getattr(replayed.nfa, field) == getattr(emitted.nfa, field), field
    assert (replayed.names, replayed.entries, replayed.finals) == (emitted.names, emitted.entries, emitted.finals)


def test_a_replayed_repetition_past_the_nfa_limit_is_refused_like_an_emitted_one(monkeypatch):
    from llmkit.core.structured import nfa

    monkeypatch.setattr(nfa, "MAX_NFA_STATES", 400)
    with pytest.raises(GrammarError, match="its automaton passes 400 states"):
        compile_structured(StructuredOutput("json_schema", {"type": "string", "maxLength": 200}))
    compile_structured(StructuredOutput("json_schema", {"type": "string", "maxLength": 5}))


def test_exclusions_only_split_the_bytes_that_continue_an_excluded_word():
    from llmkit.core.structured import automata
    from llmkit.core.structured.compiler import to_grammar

    schema = {"type": "object", "properties": {"alpha": {"type": "integer"}}, "additionalProperties": True}
    nfa = automata.rule_nfas(to_grammar(StructuredOutput("json_schema", schema))).nfa
    single_bytes = sum(1 for m in nfa.byte_mask if nfa.masks[m] & (nfa.masks[m] - 1) == 0)
    assert single_bytes < 200  # one edge per byte of the alphabet at each prefix of "alpha" would be > 1000
    grammar = schema_grammar(schema)
    assert matches(grammar, '{"alpha":1,"alphb":2}') and matches(grammar, '{"alph":"x"}')
    assert not matches(grammar, '{"alpha":"x"}')


SHARED_PIECES = [
    {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "n": {"type": "number"}}},
    {"type": "array", "items": {"type": "string", "format": "email"}, "maxItems": 3},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]},
    {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "object"}, {"type": "integer", "minimum": 3}]},
]


def nfa_snapshot(nfas):
    return [getattr(nfas.nfa, field) for field in NFA_FIELDS], nfas.names, nfas.entries, nfas.finals


def test_pieces_emitted_again_in_one_compilation_replay_the_edges_emission_appends(monkeypatch):
    """Within one compilation, a piece emitted a third time replays the edges its second emission appended:
    the NFA is, edge for edge, the one emitting it every time builds."""
    import collections

    from llmkit.core.structured import automata

    grammar = to_ir({"type": "array", "items": {"type": "string", "format": "date"}, "minItems": 3, "maxItems": 3})
    monkeypatch.setattr(automata, "_KNOWN", collections.OrderedDict())  # nothing known from other compilations
    replayed = nfa_snapshot(automata.rule_nfas(grammar))
    assert any(k.fragment is not None and not k.minimal for k in automata._KNOWN.values())
    monkeypatch.setattr(automata._Builder, "emit", automata._Builder.emit_new)
    assert replayed == nfa_snapshot(automata.rule_nfas(grammar))


def test_pieces_shared_across_compilations_replay_their_minimal_dfa_and_compile_to_the_same_tables(monkeypatch):
    """A rule-free piece that an earlier compilation emitted (a string's characters, a format, "any value")
    is replayed as its minimized DFA: a smaller NFA for the same language, so the same minimal tables."""
    from llmkit.core.structured import automata
    from llmkit.core.structured.compiled import tables_from_nfas

    grammars = [to_ir(schema) for schema in SHARED_PIECES]
    for grammar in grammars:
        automata.rule_nfas(grammar)
    shared = [automata.rule_nfas(g) for g in grammars]  # a later compilation: the pieces are known now
    assert sum(k.minimal and k.fragment is not None for k in automata._KNOWN.values()) > 5
    monkeypatch.setattr(automata._Builder, "emit", automata._Builder.emit_new)  # every piece emitted afresh
    emitted = [automata.rule_nfas(g) for g in grammars]
    for small, full in zip(shared, emitted, strict=True):
        assert small.nfa.size < full.nfa.size
        assert canonical(tables_from_nfas(small)) == canonical(tables_from_nfas(full))


def test_a_replayed_fragment_past_the_nfa_limit_is_refused_like_an_emitted_one(monkeypatch):
    from llmkit.core.structured import automata, nfa

    schema = {"type": "array", "items": {"type": "string", "format": "date-time"}, "minItems": 2, "maxItems": 2}
    compile_structured(StructuredOutput("json_schema", schema))
    compile_structured(StructuredOutput("json_schema", schema))  # the date-time literal is recorded by now
    size = automata.rule_nfas(to_ir(schema)).nfa.size  # the date-time literal replayed as its DFA by now
    monkeypatch.setattr(nfa, "MAX_NFA_STATES", size - 1)
    with pytest.raises(GrammarError, match=f"its automaton passes {size - 1} states"):
        compile_structured(StructuredOutput("json_schema", schema))


def test_rule_references_are_remembered_without_changing_equality():
    from llmkit.core.structured.ir import Alt, Bytes, Ref, Repeat, Seq, references

    shared = Seq((Bytes(1), Repeat(Ref("a"), 0, None)))
    expr = Alt((shared, Seq((shared, Ref("b"))), Bytes(2)))
    twin = Alt((Seq((Bytes(1), Repeat(Ref("a"), 0, None))), Seq((shared, Ref("b"))), Bytes(2)))
    assert references(expr) == {"a", "b"} and references(shared) == {"a"} and references(Bytes(3)) == set()
    assert "_references" in expr.__dict__  # answered once, then read back
    assert expr == twin and hash(expr) == hash(twin) and references(twin) == {"a", "b"}


def test_built_in_pieces_are_built_once_per_process():
    """Formats and the "any JSON value" rules are the same expressions in every schema that uses them (so
    their NFA fragments are replayed), and errors still name the schema location."""
    from llmkit.core.structured.json_strings import format_string
    from llmkit.core.structured.json_values import ANY_OBJECT, ANY_VALUE

    assert format_string("date", "#/a/format") is format_string("date", "#/b/format")
    assert to_ir({"type": "string"}).rules[ANY_VALUE] is to_ir({"type": "array"}).rules[ANY_VALUE]
    compact = JsonOptions(whitespace="compact")
    assert to_ir({"type": "string"}, compact).rules[ANY_OBJECT] != to_ir({"type": "string"}).rules[ANY_OBJECT]
    with pytest.raises(GrammarError, match="'#/properties/d/format'"):
        to_ir({"type": "object", "properties": {"d": {"type": "string", "format": "hostname"}}})


def to_ir(schema, options=JsonOptions()):
    from llmkit.core.structured.compiler import to_grammar

    return to_grammar(StructuredOutput("json_schema", schema, options))
