"""The Python reference of the native op `grammar_tables`' first half: each rule's DFA by subset
construction over the grammar's NFA, minimized and trimmed (called rules without the empty string), and
the rules that match nothing pruned."""

from __future__ import annotations

from .dfa import RuleDFA, atom_indices, atoms_of, minimize
from .ir import GrammarError
from .nfa import NFA, START_RULE, RuleNFAs

MAX_DFA_STATES = 60_000


def _closure(eps: list[list[int]], states: set[int]) -> frozenset[int]:
    stack, seen = list(states), set(states)
    while stack:
        for nxt in eps[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return frozenset(seen)


def determinize(nfa: NFA, start: int, final: int, name: str) -> RuleDFA:
    """Subset construction, then minimization (Moore refinement on a dense table) and trimming."""
    eps, nfa_bytes, nfa_calls = nfa.adjacency()
    first = _closure(eps, {start})
    closures: dict[frozenset[int], frozenset[int]] = {}
    index = {first: 0}
    order = [first]
    byte_edges: list[list[tuple[int, int]]] = []
    call_edges: list[list[tuple[str, int]]] = []
    i = 0
    while i < len(order):
        current = order[i]
        i += 1
        edges = [edge for s in current for edge in nfa_bytes[s]]
        atoms = atoms_of({mask for mask, _ in edges})
        targets: list[set[int]] = [set() for _ in atoms]
        for mask, target in edges:
            for k in atom_indices(atoms, mask):
                targets[k].add(target)
        by_target: dict[frozenset[int], int] = {}
        for atom, atom_targets in zip(atoms, targets, strict=True):
            frozen = frozenset(atom_targets)
            key = closures.get(frozen)
            if key is None:
                key = closures[frozen] = _closure(eps, atom_targets)
            by_target[key] = by_target.get(key, 0) | atom
        calls: dict[str, set[int]] = {}
        for s in current:
            for rule, target in nfa_calls[s]:
                calls.setdefault(rule, set()).add(target)
        row_bytes, row_calls = [], []
        for key, mask in by_target.items():
            row_bytes.append((mask, _intern(key, index, order)))
        for rule, targets in sorted(calls.items()):
            row_calls.append((rule, _intern(_closure(eps, targets), index, order)))
        byte_edges.append(row_bytes)
        call_edges.append(row_calls)
        if len(order) > MAX_DFA_STATES:
            raise GrammarError(f"the grammar is too large: a rule's DFA passes {MAX_DFA_STATES} states")
    dfa = RuleDFA(name, [final in s for s in order], byte_edges, call_edges)
    return minimize(dfa)


def _intern(key: frozenset[int], index: dict, order: list) -> int:
    if key not in index:
        index[key] = len(order)
        order.append(key)
    return index[key]


def _without_empty_start(dfa: RuleDFA) -> RuleDFA:
    """The same language minus the empty string: a fresh, non-accepting start state."""
    if not dfa.accepting[0]:
        return dfa
    shift = [(m, t + 1) for m, t in dfa.byte_edges[0]], [(r, t + 1) for r, t in dfa.call_edges[0]]
    return RuleDFA(
        dfa.name,
        [False, *dfa.accepting],
        [shift[0], *([(m, t + 1) for m, t in row] for row in dfa.byte_edges)],
        [shift[1], *([(r, t + 1) for r, t in row] for row in dfa.call_edges)],
    )


def dfas_from_nfas(nfas: RuleNFAs) -> dict[str, RuleDFA]:
    """Each rule's minimized DFA (called rules without the empty string), empty rules pruned."""
    dfas: dict[str, RuleDFA] = {}
    for name, start, final in zip(nfas.names, nfas.entries, nfas.finals, strict=True):
        dfa = determinize(nfas.nfa, start, final, name)
        dfas[name] = _without_empty_start(dfa) if name != START_RULE else dfa
    return _prune_empty_rules(dfas)


def _prune_empty_rules(dfas: dict[str, RuleDFA]) -> dict[str, RuleDFA]:
    nonempty: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, dfa in dfas.items():
            if name not in nonempty and _accepts_something(dfa, nonempty):
                nonempty.add(name)
                changed = True
    if START_RULE not in nonempty:
        raise GrammarError("the grammar matches no string at all")
    result = {}
    for name in [START_RULE, *sorted(n for n in nonempty if n != START_RULE)]:
        dfa = dfas[name]
        calls = [[(r, t) for r, t in row if r in nonempty] for row in dfa.call_edges]
        pruned = calls != dfa.call_edges
        result[name] = minimize(RuleDFA(name, dfa.accepting, dfa.byte_edges, calls)) if pruned else dfa
    reachable = {START_RULE}
    stack = [START_RULE]
    while stack:
        for row in result[stack.pop()].call_edges:
            for rule, _ in row:
                if rule not in reachable:
                    reachable.add(rule)
                    stack.append(rule)
    return {name: dfa for name, dfa in result.items() if name in reachable}


def _accepts_something(dfa: RuleDFA, nonempty: set[str]) -> bool:
    seen, stack = {0}, [0]
    while stack:
        s = stack.pop()
        if dfa.accepting[s]:
            return True
        for t in [t for _, t in dfa.byte_edges[s]] + [t for r, t in dfa.call_edges[s] if r in nonempty]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return False
