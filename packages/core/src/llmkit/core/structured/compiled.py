"""`CompiledGrammar`: the flat tables both matchers execute (one DFA per rule, global state ids)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from ..ops.dispatch import implementation, register_reference
from .automata import rule_nfas
from .dfa import RuleDFA, atoms_of
from .ir import Grammar
from .nfa import START_RULE, RuleNFAs
from .subsets import dfas_from_nfas

# NFA -> flat tables: `tables_from_nfas` below is the reference (subset construction, minimization and
# flattening in Python); llmkit-kernels registers a native one that gives the same rule languages.
TABLES_OP = "grammar_tables"
# IR -> flat tables: `tables_from_ir` (the Python NFA builder, then op `grammar_tables`) is the reference;
# llmkit-kernels registers one that builds the NFA in C++ too, with the same rule languages.
IR_TABLES_OP = "grammar_ir_tables"


@dataclasses.dataclass(eq=False)
class CompiledGrammar:
    """Rules' DFAs flattened: global states, a byte -> class map, a [states, classes] transition table
    (-1 = no edge) and call edges in CSR form. Rule 0 is the start rule (never called)."""

    rule_names: list[str]
    rule_start: np.ndarray  # int32 [R]: each rule's start state
    state_rule: np.ndarray  # int32 [N]
    accepting: np.ndarray  # uint8 [N]
    byte_class: np.ndarray  # int32 [256]
    transitions: np.ndarray  # int32 [N, C]
    call_offsets: np.ndarray  # int32 [N + 1]
    call_rules: np.ndarray  # int32 [E]
    call_targets: np.ndarray  # int32 [E]
    description: str = ""
    backend_state: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)  # per-matcher caches

    @property
    def num_states(self) -> int:
        return len(self.state_rule)

    @property
    def num_classes(self) -> int:
        return self.transitions.shape[1]

    @property
    def has_calls(self) -> bool:
        return len(self.call_rules) > 0

    @property
    def fingerprint(self) -> str:
        """sha256 of the tables: equal fingerprints execute identically."""
        digest = hashlib.sha256()
        for array in (self.rule_start, self.state_rule, self.accepting, self.byte_class, self.transitions,
                      self.call_offsets, self.call_rules, self.call_targets):  # fmt: skip
            digest.update(np.ascontiguousarray(array).tobytes())
            digest.update(b"|")
        return digest.hexdigest()

    def calls(self, state: int) -> list[tuple[int, int]]:
        lo, hi = self.call_offsets[state], self.call_offsets[state + 1]
        return list(zip(self.call_rules[lo:hi].tolist(), self.call_targets[lo:hi].tolist(), strict=True))

    def rules_with_calls(self) -> np.ndarray:
        """bool [R]: whether a rule's DFA has any call edge."""
        has = np.zeros(len(self.rule_names), dtype=bool)
        edges = np.diff(self.call_offsets) > 0
        has[np.unique(self.state_rule[edges])] = True
        return has

    def describe(self) -> str:
        return (
            f"{len(self.rule_names)} rules, {self.num_states} states, {self.num_classes} byte classes, "
            f"{len(self.call_rules)} call edges"
        )


def flatten(dfas: dict[str, RuleDFA], description: str = "") -> CompiledGrammar:
    names = [START_RULE, *(n for n in dfas if n != START_RULE)]
    rule_index = {name: i for i, name in enumerate(names)}
    offsets, total = {}, 0
    for name in names:
        offsets[name] = total
        total += dfas[name].num_states
    atoms = atoms_of({mask for d in dfas.values() for row in d.byte_edges for mask, _ in row}) or [0]
    byte_class = np.zeros(256, dtype=np.int32)
    uncovered = (1 << 256) - 1
    for k, atom in enumerate(atoms):
        uncovered &= ~atom
        for b in range(256):
            if atom >> b & 1:
                byte_class[b] = k
    classes = len(atoms)
    if uncovered:  # bytes no rule ever reads: one more class with no edges
        for b in range(256):
            if uncovered >> b & 1:
                byte_class[b] = classes
        classes += 1
    transitions = np.full((total, classes), -1, dtype=np.int32)
    state_rule = np.zeros(total, dtype=np.int32)
    accepting = np.zeros(total, dtype=np.uint8)
    call_offsets = np.zeros(total + 1, dtype=np.int32)
    call_rules: list[int] = []
    call_targets: list[int] = []
    for name in names:
        dfa, base = dfas[name], offsets[name]
        for s in range(dfa.num_states):
            g = base + s
            state_rule[g] = rule_index[name]
            accepting[g] = dfa.accepting[s]
            for mask, target in dfa.byte_edges[s]:
                for k, atom in enumerate(atoms):
                    if atom & mask:
                        transitions[g, k] = base + target
            for rule, target in dfa.call_edges[s]:
                call_rules.append(rule_index[rule])
                call_targets.append(base + target)
            call_offsets[g + 1] = len(call_rules)
    return CompiledGrammar(
        names,
        np.array([offsets[n] for n in names], dtype=np.int32),
        state_rule,
        accepting,
        byte_class,
        transitions,
        call_offsets,
        np.array(call_rules, dtype=np.int32),
        np.array(call_targets, dtype=np.int32),
        description,
    )


def tables_from_nfas(nfas: RuleNFAs, description: str = "") -> CompiledGrammar:
    """The reference of op `grammar_tables`: rule NFAs -> minimized rule DFAs -> flat tables."""
    return flatten(dfas_from_nfas(nfas), description)


register_reference(TABLES_OP, tables_from_nfas)


def tables_from_ir(grammar: Grammar, description: str = "") -> CompiledGrammar:
    """The reference of op `grammar_ir_tables`: IR -> rule NFAs (Python) -> flat tables (op `grammar_tables`)."""
    return implementation(TABLES_OP, "cpu")(rule_nfas(grammar), description)


register_reference(IR_TABLES_OP, tables_from_ir)


def compile_grammar_ir(grammar: Grammar, description: str = "") -> CompiledGrammar:
    """IR -> flat tables (op `grammar_ir_tables`: the NFA built and compiled natively when llmkit-kernels is
    installed)."""
    return implementation(IR_TABLES_OP, "cpu")(grammar, description)
