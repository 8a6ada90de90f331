"""Compiled grammars compared by structure: used by the Python compiler's tests and the native compiler's."""

from __future__ import annotations


def canonical(grammar) -> list:
    """Each rule's DFA renumbered breadth first over bytes 0..255, then calls by rule name: equal for
    isomorphic DFAs whatever their state numbers and byte classes (minimal DFAs of one language are isomorphic)."""
    by_byte = grammar.transitions[:, grammar.byte_class]  # [N, 256]
    rules = []
    for r, name in enumerate(grammar.rule_names):
        start = int(grammar.rule_start[r])
        ids, order, rows = {start: 0}, [start], []
        for state in order:
            targets = by_byte[state].tolist()
            calls = sorted((grammar.rule_names[rule], target) for rule, target in grammar.calls(state))
            for target in [t for t in targets if t >= 0] + [t for _, t in calls]:
                if target not in ids:
                    ids[target] = len(order)
                    order.append(target)
            row_calls = tuple((rule, ids[t]) for rule, t in calls)
            rows.append((bool(grammar.accepting[state]), tuple(ids.get(t, -1) for t in targets), row_calls))
        rules.append((name, rows))
    return rules
