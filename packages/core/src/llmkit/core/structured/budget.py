"""Finishing within the token budget: the fewest bytes that complete the grammar from a DFA state.

Bytes are counted only over bytes the vocabulary has a one-byte token for, so a cost of n bytes can
always be written in at most n tokens. Near the end of `max_tokens` the matcher keeps only the
tokens after which the grammar can still finish, and the stop token still fits; a recursive schema
that a model would nest forever then closes in time instead of being cut off as invalid JSON.
"""

from __future__ import annotations

import numpy as np

from .compiled import CompiledGrammar

UNREACHABLE = 1 << 40
BUDGET_WINDOW = 64  # tokens before the budget could bind at which tokens start being checked


def single_byte_tokens(token_bytes: list[bytes | None]) -> np.ndarray:
    """bool [256]: bytes the vocabulary can write one token at a time."""
    usable = np.zeros(256, dtype=bool)
    for data in token_bytes:
        if data is not None and len(data) == 1:
            usable[data[0]] = True
    return usable


def finish_costs(grammar: CompiledGrammar, usable: np.ndarray) -> np.ndarray:
    """int64 [states]: fewest usable bytes from each state to an accepting state of its rule (callees cost
    their shortest strings); a fixpoint of Bellman-Ford relaxations."""
    classes = np.zeros(grammar.num_classes, dtype=bool)
    classes[grammar.byte_class[usable]] = True
    table = grammar.transitions[:, classes]
    has_edge = table >= 0
    cost = np.where(grammar.accepting.astype(bool), 0, UNREACHABLE).astype(np.int64)
    edge_state = np.repeat(np.arange(grammar.num_states), np.diff(grammar.call_offsets))
    while True:
        via_bytes = np.where(has_edge, cost[np.maximum(table, 0)] + 1, UNREACHABLE).min(axis=1, initial=UNREACHABLE)
        updated = np.minimum(cost, via_bytes)
        if len(edge_state):
            shortest = cost[grammar.rule_start]
            via_calls = shortest[grammar.call_rules] + cost[grammar.call_targets]
            np.minimum.at(updated, edge_state, via_calls)
        updated = np.minimum(updated, UNREACHABLE)
        if np.array_equal(updated, cost):
            return cost
        cost = updated
