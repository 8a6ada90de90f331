"""The native grammar compiler (op `grammar_tables`: NFA -> subset construction, trimming, pruning, flat
tables) against the Python reference `compiled.tables_from_nfas`, and the native NFA builder (op
`grammar_ir_tables`: IR objects -> Thompson NFA in C++ -> the same compiler) against `automata.rule_nfas`:
every rule matches the same language (compared as the canonical form of its minimal DFA), the native DFAs
are trimmed, the matchers give the same masks on random walks, and the same grammars are refused with the
same messages."""

from __future__ import annotations

import json
import random
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from core.grammar_tables import canonical, rule_dfas
from core.random_schemas import schemas as random_schemas
from core.random_schemas import valid_schemas
from hypothesis import HealthCheck, given, settings

from llmkit.core.ops import dispatch
from llmkit.core.structured import (
    CompiledGrammar,
    GrammarError,
    JsonOptions,
    StructuredOutput,
    automata,
    compiled,
    dfa,
    subsets,
)
from llmkit.core.structured import ir as gir
from llmkit.core.structured.compiler import to_grammar
from llmkit.core.structured.vocabulary import vocabulary_index
from llmkit.kernels import _C
from llmkit.kernels.grammar_matcher import NativeGrammarMatcher, compile_grammar_ir, compile_rule_nfas

SUITE = json.loads((Path(__file__).parents[2] / "benchmarks" / "structured_schemas.json").read_text())
SPECS = {f"suite/{name}": StructuredOutput("json_schema", item["schema"]) for name, item in SUITE.items()} | {
    "flexible": StructuredOutput("json_schema", SUITE["person"]["schema"], JsonOptions(whitespace="flexible")),
    "regex/code": StructuredOutput("regex", r"[A-Z]{3}-\d{4}"),
    "regex/alternation": StructuredOutput("regex", r"(ab|a)*c?(x{2,5}|y+)"),
    "regex/unicode": StructuredOutput("regex", r"[α-ω]{1,3}[^a-z]\w+"),
    "gbnf/list": StructuredOutput("grammar", 'root ::= list\nlist ::= "[" (item ("," item)*)? "]"\nitem ::= [a-z]+ | list'),
    "gbnf/nullable": StructuredOutput("grammar", 'root ::= a "!"\na ::= "x"? b?\nb ::= "(" a ")"'),
    "tools": StructuredOutput("tool_calls", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}], "tool_choice": "auto"}),
    "json_object": StructuredOutput("json_object"),
}  # fmt: skip


def both(spec: StructuredOutput) -> tuple[CompiledGrammar, CompiledGrammar]:
    nfas = automata.rule_nfas(to_grammar(spec))
    return compile_rule_nfas(nfas), compiled.tables_from_nfas(nfas)


@pytest.mark.parametrize("name", list(SPECS))
def test_native_tables_are_the_reference_dfas(name):
    native, reference = both(SPECS[name])
    assert native.rule_names == reference.rule_names
    assert native.num_states >= reference.num_states  # trimmed, not minimized
    assert canonical(native) == canonical(reference)
    # The compiler hands its tables to the matcher unchecked; they pass the checks of any other tables.
    arrays = (native.rule_start, native.state_rule, native.accepting, native.byte_class, native.transitions.reshape(-1))
    checked = _C.GrammarTables(*arrays, native.num_classes, native.call_offsets, native.call_rules, native.call_targets)
    assert checked.num_states == native.backend_state["native_tables"].num_states == native.num_states


@pytest.mark.parametrize("name", list(SPECS))
def test_native_rule_dfas_are_trimmed(name):
    assert_trimmed(compile_rule_nfas(automata.rule_nfas(to_grammar(SPECS[name]))))


def assert_trimmed(grammar: CompiledGrammar) -> None:
    """Every state can still reach an accepting state: the token walk accepts a token whose bytes lead
    into a state, so a dead one would let through tokens that can never complete. (Reachability is not
    asked: a called rule whose language held the empty string keeps its old start beside the fresh one.)"""
    for rule in rule_dfas(grammar):
        edges = [
            [t for _, t in rule.byte_edges[s]] + [t for _, t in rule.call_edges[s]] for s in range(rule.num_states)
        ]
        live = {s for s in range(rule.num_states) if rule.accepting[s]}
        while more := {s for s in range(rule.num_states) if s not in live and any(t in live for t in edges[s])}:
            live |= more
        assert live == set(range(rule.num_states)), rule.name


@pytest.mark.parametrize("name", ["suite/string_lengths", "suite/recursive_tree", "gbnf/list", "regex/alternation"])
def test_reference_merging_rows_above_its_limit_matches_the_same_languages(name, monkeypatch):
    monkeypatch.setattr(dfa, "FULL_MINIMIZATION_LIMIT", 8)
    native, reference = both(SPECS[name])
    assert canonical(native) == canonical(reference)


@pytest.mark.parametrize("name", list(SPECS))
def test_shared_pieces_replayed_as_minimal_dfas_give_the_tables_of_full_emission(name, monkeypatch):
    """Pieces another compilation emitted (strings, formats, "any value") are replayed as their minimized
    DFA: a smaller NFA (2.5-3x on the benchmark schemas) whose native tables are those of emitting every piece afresh."""
    grammar = to_grammar(SPECS[name])
    automata.rule_nfas(to_grammar(SPECS["suite/person"]))  # another compilation: the shared pieces are known
    automata.rule_nfas(grammar)
    shared = automata.rule_nfas(grammar)
    monkeypatch.setattr(automata._Builder, "emit", automata._Builder.emit_new)
    emitted = automata.rule_nfas(grammar)
    assert canonical(compile_rule_nfas(shared)) == canonical(compile_rule_nfas(emitted))


def _tables_or_error(nfas):
    try:
        grammar = compile_rule_nfas(nfas)
    except GrammarError as err:
        return str(err)
    assert_trimmed(grammar)
    return canonical(grammar)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=valid_schemas)
def test_random_valid_schemas_compile_to_the_reference_languages(schema):
    """Native tables against the Python reference on random well-formed schemas (objects, arrays, unions,
    bounded strings, formats, patterns, numeric bounds, recursion): each rule the same language, every
    native state able to reach acceptance."""
    nfas = automata.rule_nfas(to_grammar(StructuredOutput("json_schema", schema)))
    native = compile_rule_nfas(nfas)
    assert_trimmed(native)
    assert canonical(native) == canonical(compiled.tables_from_nfas(nfas))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=random_schemas | valid_schemas)
def test_random_schemas_compile_to_the_tables_of_full_emission(schema):
    """On random schemas, the NFA built with replays (pieces recorded within the compilation, pieces of other
    compilations as their minimized DFA, byte sets interned per NFA) compiles to the tables, or the refusal,
    of emitting every piece afresh."""
    try:
        grammar = to_grammar(StructuredOutput("json_schema", schema))
        automata.rule_nfas(grammar)  # its pieces are known from another compilation now
        replayed = automata.rule_nfas(grammar)
    except GrammarError:
        return
    with mock.patch.object(automata._Builder, "emit", automata._Builder.emit_new):
        emitted = automata.rule_nfas(grammar)
    assert _tables_or_error(replayed) == _tables_or_error(emitted)


def test_the_dispatcher_compiles_natively():
    assert dispatch.implementation(compiled.TABLES_OP, "cpu") is compile_rule_nfas
    assert dispatch.reference(compiled.TABLES_OP) is compiled.tables_from_nfas
    assert dispatch.implementation(compiled.IR_TABLES_OP, "cpu") is compile_grammar_ir
    assert dispatch.reference(compiled.IR_TABLES_OP) is compiled.tables_from_ir


# --- the native NFA builder (op grammar_ir_tables) against automata.rule_nfas ----------------------------


def _ir_tables_or_error(build, grammar: gir.Grammar):
    try:
        tables = build(grammar)
    except GrammarError as err:
        return str(err)
    assert_trimmed(tables)
    return tables.rule_names, canonical(tables)


def _reference_from_ir(grammar: gir.Grammar):
    return compiled.tables_from_nfas(automata.rule_nfas(grammar))


@pytest.mark.parametrize("name", list(SPECS))
def test_native_nfa_builder_gives_the_reference_languages(name):
    """Three compilations of the same IR: the first emits every piece, the later ones replay the pieces the
    native builder recorded (and the shared ones as their minimized DFAs): the same languages each time."""
    grammar = to_grammar(SPECS[name])
    expected = _ir_tables_or_error(_reference_from_ir, grammar)
    for _ in range(3):
        assert _ir_tables_or_error(compile_grammar_ir, grammar) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=random_schemas | valid_schemas)
def test_random_schemas_build_natively_to_the_reference_languages_or_refusals(schema):
    try:
        grammar = to_grammar(StructuredOutput("json_schema", schema))
    except GrammarError:
        return
    expected = _ir_tables_or_error(_reference_from_ir, grammar)
    assert _ir_tables_or_error(compile_grammar_ir, grammar) == expected
    assert _ir_tables_or_error(compile_grammar_ir, grammar) == expected  # pieces replayed


def _letters(text: str) -> gir.Expr:
    return gir.Bytes(sum(1 << ord(c) for c in text))


EDGE_GRAMMARS = {
    # a called rule that is nullable and recursive, inside a long bounded repetition (copied edges with calls)
    "calls_in_copies": gir.Grammar(
        {"root": gir.Repeat(gir.seq(gir.literal("("), gir.Ref("inner"), gir.literal(")")), 2, 9),
         "inner": gir.alt(gir.EMPTY, gir.seq(gir.literal("<"), gir.Ref("inner"), gir.literal(">")))},
        "root",
    ),
    # exclusions and avoidances (products built in Python), over an item that inlines another rule
    "products": gir.Grammar(
        {"root": gir.seq(gir.Exclude(gir.Ref("word"), frozenset({b"ab", b"abc", b""})), gir.literal("="),
                         gir.Avoid(gir.star(_letters("abc")), b"cab"), gir.literal(";")),
         "word": gir.Repeat(_letters("abc"), 0, 6)},
        "root",
    ),
    # an empty byte set (matches nothing) beside a live branch; repetitions of a piece that ends at its entry
    "empty_pieces": gir.Grammar(
        {"root": gir.seq(gir.alt(gir.Bytes(0), gir.literal("x")), gir.Repeat(gir.star(gir.literal("y")), 3, 7),
                         gir.Repeat(gir.EMPTY, 5, 40), gir.Repeat(gir.literal("z"), 0, 5))},
        "root",
    ),
    # rules kept as calls though not recursive (Grammar.called), one of them unreachable
    "asked_calls": gir.Grammar(
        {"root": gir.seq(gir.Ref("a"), gir.Ref("b"), gir.Ref("a")), "a": gir.literal("aa"), "b": gir.literal("b"),
         "unused": gir.literal("u")},
        "root",
        called={"a"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(EDGE_GRAMMARS))
def test_native_nfa_builder_on_edge_grammars(name):
    grammar = EDGE_GRAMMARS[name]
    expected = _ir_tables_or_error(_reference_from_ir, grammar)
    assert not isinstance(expected, str)
    for _ in range(3):
        assert _ir_tables_or_error(compile_grammar_ir, grammar) == expected


def assert_refused_alike(grammar: gir.Grammar, match: str) -> None:
    """The reference and the native builder both refuse `grammar`, with one message."""
    messages = []
    for build in (_reference_from_ir, compile_grammar_ir):
        with pytest.raises(GrammarError, match=match) as refused:
            build(grammar)
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


def test_native_nfa_builder_refuses_what_the_reference_refuses(monkeypatch):
    from llmkit.core.structured import nfa

    monkeypatch.setattr(nfa, "MAX_NFA_STATES", 400)
    grammar = to_grammar(StructuredOutput("json_schema", {"type": "string", "maxLength": 200}))
    assert_refused_alike(grammar, "its automaton passes 400 states")
    nothing = gir.Grammar(
        {"root": gir.seq(gir.literal("a"), gir.Ref("loop")), "loop": gir.seq(gir.literal("b"), gir.Ref("loop"))}, "root"
    )
    with pytest.raises(GrammarError, match="matches no string at all"):
        compile_grammar_ir(nothing)
    with pytest.raises(GrammarError, match="undefined rule 'missing'"):
        compile_grammar_ir(gir.Grammar({"root": gir.Ref("missing")}, "root"))


def test_native_nfa_builder_names_what_it_cannot_build():
    from llmkit.kernels.grammar_matcher import IR_TYPES

    def build(rules: dict) -> str:  # the binding itself: Python's own analyses would stop first
        unused = lambda expr: pytest.fail("no hook is needed")  # noqa: E731
        return _C.compile_grammar_ir(rules, "root", set(), "__start__", gir.Ref("root"), unused, unused, IR_TYPES, 10**6, 10**6)  # fmt: skip

    deep: gir.Expr = gir.literal("x")
    for _ in range(3000):  # deeper than Python's recursive analyses go
        deep = gir.Alt((deep, gir.literal("y")))
    assert build({"root": deep}) == "the grammar nests expressions more than 2000 deep"
    assert build({"root": gir.Seq((gir.literal("a"), "not an expression"))}) == "unknown grammar expression 'not an expression'"  # fmt: skip
    with pytest.raises(OverflowError):
        compile_grammar_ir(gir.Grammar({"root": gir.Bytes(1 << 300)}, "root"))
    # A hook's fragment is checked before it is replayed.
    from llmkit.core.structured.nfa import Fragment

    product = {"root": gir.Exclude(gir.literal("ab"), frozenset({b"a"}))}
    for fragment, error, message in [
        (Fragment(1, 0, ((-1,), (0,)), ([], [], []), ()), TypeError, "fragment eps must be a list"),
        (Fragment(1, 0, ([-1], [5]), ([], [], []), ()), ValueError, "names a state or byte set it does not have"),
        (Fragment(2, 1, ([], []), ([-1], [3], [0]), (2,)), ValueError, "names a state or byte set it does not have"),
    ]:
        with pytest.raises(error, match=message):
            _C.compile_grammar_ir(product, "root", set(), "__start__", gir.Ref("root"), lambda e, f=fragment: f, lambda e: None, IR_TYPES, 10**6, 10**6)  # fmt: skip


@pytest.mark.parametrize(
    "grammar",
    [
        gir.Grammar(
            {"root": gir.seq(gir.literal("a"), gir.Ref("b")), "b": gir.alt(gir.Ref("missing"), gir.EMPTY)}, "root"
        ),
        gir.Grammar({"root": gir.literal("a"), "unused": gir.Ref("gone")}, "root"),  # unreachable rules are checked too
        gir.Grammar({"root": gir.literal("a")}, "nowhere"),
        gir.Grammar({"root": gir.seq(gir.literal("a"), gir.Ref("__start__"))}, "root"),  # the start rule's name
    ],
    ids=["undefined", "undefined-unreachable", "no-root", "start-name"],
)
def test_native_plan_refuses_undefined_rules_as_the_reference_does(grammar):
    assert_refused_alike(grammar, "undefined rule|no root rule")


def test_native_plan_walks_shared_expressions_once_per_rule(monkeypatch):
    """An expression shared twice at every level of a 40-deep nest (2^40 paths, 41 distinct objects) that
    names a rule: the plan stays linear in the objects and the grammar is refused as too large, as the
    reference refuses it."""
    from llmkit.core.structured import nfa

    monkeypatch.setattr(nfa, "MAX_NFA_STATES", 5_000)
    shared: gir.Expr = gir.seq(gir.literal("x"), gir.Ref("leaf"))
    for _ in range(40):
        shared = gir.Seq((shared, shared))
    grammar = gir.Grammar({"root": shared, "leaf": gir.literal("y")}, "root")
    assert_refused_alike(grammar, "passes 5000 states")
    # As alternatives, the nullability of every branch is asked (the reference's walk is exponential here).
    branches: gir.Expr = gir.seq(gir.literal("x"), gir.Ref("leaf"))
    for _ in range(40):
        branches = gir.Alt((branches, branches))
    with pytest.raises(GrammarError, match="passes 5000 states"):
        compile_grammar_ir(gir.Grammar({"root": gir.seq(gir.Ref("leaf"), branches), "leaf": gir.alt(gir.EMPTY, gir.literal("y"))}, "root"))  # fmt: skip


def test_native_plan_finds_recursion_and_nullability_like_the_reference():
    """Mutual recursion through a nullable rule, a self-recursive rule, a rule recursive only through an
    exclusion's item, and a rule reachable only from a recursive one."""
    grammar = gir.Grammar(
        {
            "root": gir.seq(gir.Ref("a"), gir.literal(";"), gir.Ref("self"), gir.literal(";"), gir.Ref("leaf")),
            "a": gir.alt(gir.EMPTY, gir.seq(gir.literal("["), gir.Ref("b"), gir.literal("]"))),
            "b": gir.seq(gir.Ref("a"), gir.Ref("tail")),
            "tail": gir.Repeat(gir.literal("x"), 0, 3),
            "self": gir.alt(gir.literal("s"), gir.seq(gir.literal("("), gir.Ref("self"), gir.literal(")"))),
            "leaf": gir.Exclude(gir.Repeat(gir.Bytes(gir.byte_set((ord("a"), ord("c")))), 0, 4), frozenset({b"", b"ab"})),
        },
        "root",
    )  # fmt: skip
    plan = automata.nfa_plan(grammar)
    assert plan.called == {"a", "b", "self"} and plan.nullable == {"a", "b", "tail"}
    expected = _ir_tables_or_error(_reference_from_ir, grammar)
    native = compile_grammar_ir(grammar)
    assert native.rule_names == ["__start__", "a", "b", "self"]
    assert (native.rule_names, canonical(native)) == expected


@pytest.fixture(scope="module")
def vocab(tiny):
    return vocabulary_index(tiny.tokenizer)


@pytest.mark.parametrize(
    "name", ["suite/person", "suite/recursive_list", "suite/extra_props", "gbnf/list", "regex/unicode", "tools"]
)
def test_same_masks_on_random_walks(name, vocab):
    native, reference = (NativeGrammarMatcher(g, vocab) for g in both(SPECS[name]))
    rng = random.Random(name)
    for _ in range(4):
        native.reset(), reference.reset()
        for _ in range(60):
            allowed = native.allowed_tokens()
            np.testing.assert_array_equal(allowed, reference.allowed_tokens())
            assert native.can_terminate() == reference.can_terminate()
            choices = np.flatnonzero(allowed).tolist()
            if not choices or native.is_terminated():
                break
            token = rng.choice(choices)
            assert native.accept_token(token) and reference.accept_token(token)


def test_a_grammar_matching_nothing_is_refused_alike():
    spec = StructuredOutput("grammar", 'root ::= "a" loop\nloop ::= "b" loop')
    nfas = automata.rule_nfas(to_grammar(spec))
    with pytest.raises(GrammarError, match="matches no string at all"):
        compiled.tables_from_nfas(nfas)
    with pytest.raises(GrammarError, match="matches no string at all"):
        compile_rule_nfas(nfas)


def test_too_many_dfa_states_is_refused_alike(monkeypatch):
    monkeypatch.setattr(subsets, "MAX_DFA_STATES", 50)
    nfas = automata.rule_nfas(to_grammar(SPECS["suite/person"]))
    messages = []
    for build in (compiled.tables_from_nfas, compile_rule_nfas):
        with pytest.raises(GrammarError, match="passes 50 states") as refused:
            build(nfas)
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


def test_malformed_nfa_tables_are_rejected():
    ints = lambda *v: np.array(v, dtype=np.int32)  # noqa: E731
    none = ints()
    mask = np.array([0, 1 << (ord("a") - 64), 0, 0], dtype=np.uint64)  # the byte "a"
    ok = dict(num_states=2, eps_src=none, eps_dst=none, byte_src=ints(0), byte_mask=ints(0), byte_dst=ints(1),
              masks=mask, call_src=none, call_rule=none, call_dst=none, rule_entry=ints(0), rule_final=ints(1),
              max_dfa_states=100)  # fmt: skip
    (kept, _, _, accepting, byte_class, classes, transitions, *_), _ = _C.compile_rule_nfas(**ok)
    assert kept.tolist() == [0] and accepting.tolist() == [0, 1] and classes == 2
    by_byte = transitions.reshape(2, classes)[:, byte_class]
    assert by_byte[0, ord("a")] == 1 and (np.delete(by_byte[0], ord("a")) == -1).all() and (by_byte[1] == -1).all()
    assert "matches no string" in _C.compile_rule_nfas(**(ok | dict(masks=np.zeros(4, dtype=np.uint64))))
    for bad, message in [
        (dict(byte_dst=ints(2)), "outside"),
        (dict(byte_mask=ints(1)), "names mask 1"),
        (dict(rule_final=ints(5)), "outside the NFA"),
        (dict(call_src=ints(0), call_rule=ints(0), call_dst=ints(1)), "names rule 0"),
        (dict(eps_src=ints(0), eps_dst=none), "differ in length"),
        (dict(byte_dst=[1 << 40]), r"byte_dst\[0\] = 1099511627776 does not fit in int32"),
    ]:
        with pytest.raises(ValueError, match=message):
            _C.compile_rule_nfas(**(ok | bad))
    as_lists = {
        key: value.tolist() if key not in ("masks", "num_states", "max_dfa_states") else value
        for key, value in ok.items()
    }
    assert _C.compile_rule_nfas(**as_lists)[0][6].tolist() == transitions.tolist()  # lists, as the compiler passes them
    with pytest.raises(TypeError):
        _C.compile_rule_nfas(**(as_lists | dict(byte_src=["0"])))
