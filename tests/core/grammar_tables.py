"""Compiled grammars compared by language: used by the Python compiler's tests and the native compiler's."""

from __future__ import annotations

import numpy as np

from llmkit.core.structured.dfa import RuleDFA, minimize


def rule_dfas(grammar) -> list[RuleDFA]:
    """Each rule of the flat tables as a RuleDFA (its start state first)."""
    class_mask = [0] * grammar.num_classes
    for b, c in enumerate(grammar.byte_class.tolist()):
        class_mask[c] |= 1 << b
    dfas = []
    for r, name in enumerate(grammar.rule_names):
        start = int(grammar.rule_start[r])
        order = [start, *(s for s in np.flatnonzero(grammar.state_rule == r).tolist() if s != start)]
        local = {s: i for i, s in enumerate(order)}
        accepting, byte_edges, call_edges = [], [], []
        for s in order:
            masks: dict[int, int] = {}
            for c, t in enumerate(grammar.transitions[s].tolist()):
                if t >= 0:
                    masks[local[t]] = masks.get(local[t], 0) | class_mask[c]
            accepting.append(bool(grammar.accepting[s]))
            byte_edges.append([(mask, t) for t, mask in masks.items()])
            call_edges.append([(grammar.rule_names[rule], local[t]) for rule, t in grammar.calls(s)])
        dfas.append(RuleDFA(name, accepting, byte_edges, call_edges))
    return dfas


def canonical(grammar) -> list:
    """Each rule's minimal DFA renumbered breadth first over bytes 0..255, then calls by rule name: equal
    for grammars whose rules match the same languages, whatever their state numbers and byte classes
    (the native compiler trims its DFAs but does not minimize them)."""
    rules = []
    for dfa in rule_dfas(grammar):
        dfa = minimize(dfa, exact=True)
        by_byte = []
        for edges in dfa.byte_edges:
            targets = [-1] * 256
            for mask, t in edges:
                for b in range(256):
                    if mask >> b & 1:
                        targets[b] = t
            by_byte.append(targets)
        ids, order, rows = {0: 0}, [0], []
        for state in order:
            calls = sorted(dfa.call_edges[state])
            for target in [t for t in by_byte[state] if t >= 0] + [t for _, t in calls]:
                if target not in ids:
                    ids[target] = len(order)
                    order.append(target)
            row_calls = tuple((rule, ids[t]) for rule, t in calls)
            rows.append((dfa.accepting[state], tuple(ids.get(t, -1) for t in by_byte[state]), row_calls))
        rules.append((dfa.name, rows))
    return rules
