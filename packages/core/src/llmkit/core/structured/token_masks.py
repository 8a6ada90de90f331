"""Which tokens an Earley item can read, decided once per item state and cached.

From an item in state s of rule R, each token is ACCEPTED (its bytes are read without leaving
R; callees are entered and left on a local stack, which is context-free), UNCERTAIN (R can end
inside the token and the rest depends on R's callers: checked against the real chart at run
time) or REJECTED. The walk follows the vocabulary trie, so a dead prefix prunes its subtree.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .compiled import CompiledGrammar
from .vocabulary import VocabularyIndex

MAX_LOCAL_STACK = 32  # deeper callee nesting inside one token is left to the run-time check
MAX_CONFIGURATIONS = 512


@dataclasses.dataclass
class MaskEntry:
    accepted: np.ndarray  # bool [vocab]
    uncertain: np.ndarray  # int64 token ids


def classify(grammar: CompiledGrammar, vocabulary: VocabularyIndex, state: int) -> MaskEntry:
    rule = int(grammar.state_rule[state])
    if not grammar.rules_with_calls()[rule]:
        alive, parent_uncertain = _walk_without_calls(grammar, vocabulary, state, rule == 0)
    else:
        alive, parent_uncertain = _walk_with_calls(grammar, vocabulary, state, rule == 0)
    nodes = vocabulary.token_node
    valid = nodes >= 0
    safe = np.where(valid, nodes, 0)
    accepted = valid & alive[safe]
    uncertain = valid & ~accepted & parent_uncertain[safe]
    return MaskEntry(accepted, np.flatnonzero(uncertain))


def _levels(vocabulary: VocabularyIndex) -> list[np.ndarray]:
    levels = vocabulary.backend_state.get("levels")
    if levels is None:
        depth = vocabulary.node_depth
        order = np.argsort(depth, kind="stable")
        bounds = np.searchsorted(depth[order], np.arange(int(depth.max()) + 2))
        levels = [order[bounds[d] : bounds[d + 1]] for d in range(len(bounds) - 1)]
        vocabulary.backend_state["levels"] = levels
    return levels


def _walk_without_calls(grammar: CompiledGrammar, vocabulary: VocabularyIndex, start: int, is_start: bool):
    """A rule with no call edges: one DFA state per trie node, computed level by level."""
    n = len(vocabulary.node_depth)
    state = np.full(n, -1, dtype=np.int64)
    ends_here = np.zeros(n, dtype=bool)  # the item's rule can end at or above this node
    accepting = grammar.accepting.astype(bool)
    state[0] = start
    ends_here[0] = accepting[start] and not is_start
    classes = grammar.byte_class[np.maximum(vocabulary.node_byte, 0)]
    parent_ends = np.zeros(n, dtype=bool)
    for nodes in _levels(vocabulary)[1:]:
        parents = vocabulary.node_parent[nodes]
        from_state = state[parents]
        alive = from_state >= 0
        nxt = np.full(len(nodes), -1, dtype=np.int64)
        nxt[alive] = grammar.transitions[from_state[alive], classes[nodes[alive]]]
        state[nodes] = nxt
        parent_ends[nodes] = ends_here[parents]
        ends_here[nodes] = ends_here[parents] | ((nxt >= 0) & accepting[np.maximum(nxt, 0)] & (not is_start))
    return state >= 0, parent_ends


def _close(grammar: CompiledGrammar, configs: set[tuple[int, ...]], is_start: bool, calls, starts):
    """Enter callees and leave finished ones; True if the bottom rule can end here (or the walk gave up)."""
    out: set[tuple[int, ...]] = set()
    stack = list(configs)
    ends = False
    accepting = grammar.accepting
    while stack:
        config = stack.pop()
        if config in out:
            continue
        out.add(config)
        if len(out) > MAX_CONFIGURATIONS:
            return out, True
        top = config[-1]
        for rule, target in calls[top]:
            if len(config) >= MAX_LOCAL_STACK:
                ends = True
                continue
            stack.append((*config[:-1], target, starts[rule]))
        if accepting[top]:
            if len(config) > 1:
                stack.append(config[:-1])
            elif not is_start:
                ends = True
    return out, ends


def _walk_with_calls(grammar: CompiledGrammar, vocabulary: VocabularyIndex, start: int, is_start: bool):
    """Stacks of (return states..., current state) per trie node, depth first with pruning."""
    calls = grammar.backend_state.get("calls_lists")
    if calls is None:
        calls = grammar.backend_state["calls_lists"] = [grammar.calls(s) for s in range(grammar.num_states)]
    starts = grammar.rule_start.tolist()
    table = grammar.transitions
    classes = grammar.byte_class
    n = len(vocabulary.node_depth)
    alive = np.zeros(n, dtype=bool)
    parent_ends = np.zeros(n, dtype=bool)
    depth, node_byte, subtree_end = vocabulary.node_depth, vocabulary.node_byte, vocabulary.subtree_end
    configs, ends = _close(grammar, {(start,)}, is_start, calls, starts)
    alive[0] = True
    level_configs = [configs]
    level_ends = [ends]
    node = 1
    while node < n:
        d = int(depth[node])
        del level_configs[d:], level_ends[d:]
        above, above_ends = level_configs[d - 1], level_ends[d - 1]
        cls = classes[node_byte[node]]
        moved = set()
        for config in above:
            target = table[config[-1], cls]
            if target >= 0:
                moved.add((*config[:-1], int(target)))
        if not moved:
            end = int(subtree_end[node])
            parent_ends[node:end] = above_ends
            node = end
            continue
        closed, ends = _close(grammar, moved, is_start, calls, starts)
        alive[node] = True
        parent_ends[node] = above_ends
        level_configs.append(closed)
        level_ends.append(above_ends or ends)
        node += 1
    return alive, parent_ends
