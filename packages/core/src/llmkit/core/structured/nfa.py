"""A grammar's Thompson NFA as the compiler builds it: edge lists over one state space (`NFA`), the
byte sets interned as they appear, copies of a fragment appended in bulk (`NFA.replay_chain`), and a
recorded emission replayed from another entry (`Fragment`). `automata` emits grammars into it; the
native op `grammar_tables` and the Python reference in `subsets` determinize it."""

from __future__ import annotations

import dataclasses
import functools
import operator

import numpy as np

from .dfa import RuleDFA
from .ir import GrammarError

MAX_NFA_STATES = 200_000
NUMPY_REPLAY_EDGES = 512  # replays of more edges than this (edges x copies) shift the states with numpy
START_RULE = "__start__"
Mark = tuple[int, int, int, int]  # an NFA's size and edge counts at one moment (NFA.mark)


class NFA:
    """A Thompson NFA as edge lists (source, ..., target); several rules may share its state space (the size
    limit counts the states of the rule being built, from `base`)."""

    def __init__(self) -> None:
        self.size = 0
        self.base = 0
        self.eps_src: list[int] = []
        self.eps_dst: list[int] = []
        self.byte_src: list[int] = []
        self.byte_mask: list[int] = []  # per byte edge: the id of its byte set in `masks`
        self.byte_dst: list[int] = []
        self.masks: list[int] = []  # the distinct byte sets of the edges, by id (first appearance)
        self._mask_ids: dict[int, int] = {}
        self.call_src: list[int] = []
        self.call_rule: list[str] = []
        self.call_dst: list[int] = []

    def new(self) -> int:
        self._check_room(1)
        self.size += 1
        return self.size - 1

    def _check_room(self, count: int) -> None:
        if self.size + count - self.base > MAX_NFA_STATES:
            raise GrammarError(
                f"the grammar is too large: its automaton passes {MAX_NFA_STATES} states "
                "(very long bounded repetitions or deeply duplicated sub-schemas)"
            )

    def mark(self) -> Mark:
        """Where the next fragment starts: (states, epsilon edges, byte edges, call edges) so far."""
        return self.size, len(self.eps_src), len(self.byte_src), len(self.call_src)

    def replay_chain(self, start: Mark, stop: Mark, entry: int, exit_state: int, copies: int) -> list[int]:
        """Append `copies` copies of the fragment emitted between `start` and `stop` (from `entry` to
        `exit_state`), each entered where the one before exits: exactly what emitting the same expression
        again and again would append, since emission creates fresh states in order and links them only
        to its entry. Returns the copies' exits."""
        first, count = start[0], stop[0] - start[0]
        self._check_room(count * copies)
        chained = exit_state >= first  # else the fragment ends at its entry, and so does every copy
        offsets = [self.size - first + count * k for k in range(copies)]  # copy k's state offset
        entries = [exit_state + offset - count for offset in offsets] if chained else [entry] * copies
        entries[0] = exit_state if chained else entry
        edges = (stop[1] - start[1]) + (stop[2] - start[2]) + (stop[3] - start[3])
        if edges * copies > NUMPY_REPLAY_EDGES:
            shift, entry_of = np.array(offsets)[:, None], np.array(entries)[:, None]  # [copies, 1]

            def moved(states: list[int]) -> list[int]:
                fragment = np.array(states, dtype=np.int64)[None, :]
                return np.where(fragment >= first, fragment + shift, entry_of).ravel().tolist()

        else:  # numpy's setup costs more than a few hundred edges in Python (whitespace runs, short strings)

            def moved(states: list[int]) -> list[int]:
                out: list[int] = []
                for offset, copy_entry in zip(offsets, entries, strict=True):
                    out += [s + offset if s >= first else copy_entry for s in states]
                return out

        eps, byte, call = slice(start[1], stop[1]), slice(start[2], stop[2]), slice(start[3], stop[3])
        self.eps_src += moved(self.eps_src[eps])
        self.eps_dst += moved(self.eps_dst[eps])
        self.byte_src += moved(self.byte_src[byte])
        self.byte_mask += self.byte_mask[byte] * copies
        self.byte_dst += moved(self.byte_dst[byte])
        self.call_src += moved(self.call_src[call])
        self.call_rule += self.call_rule[call] * copies
        self.call_dst += moved(self.call_dst[call])
        self.size += count * copies
        return [exit_state + offset for offset in offsets] if chained else [entry] * copies

    def eps(self, source: int, target: int) -> None:
        self.eps_src.append(source)
        self.eps_dst.append(target)

    def byte(self, source: int, mask: int, target: int) -> None:
        self.byte_src.append(source)
        self.byte_mask.append(self.mask_id(mask))
        self.byte_dst.append(target)

    def mask_id(self, mask: int) -> int:
        known = self._mask_ids.get(mask)
        if known is None:
            known = self._mask_ids[mask] = len(self.masks)
            self.masks.append(mask)
        return known

    def call(self, source: int, rule: str, target: int) -> None:
        self.call_src.append(source)
        self.call_rule.append(rule)
        self.call_dst.append(target)

    def adjacency(self) -> tuple[list[list[int]], list[list[tuple[int, int]]], list[list[tuple[str, int]]]]:
        """Per state: epsilon targets, (mask, target) byte edges, (rule, target) call edges."""
        eps: list[list[int]] = [[] for _ in range(self.size)]
        byte_edges: list[list[tuple[int, int]]] = [[] for _ in range(self.size)]
        calls: list[list[tuple[str, int]]] = [[] for _ in range(self.size)]
        for source, target in zip(self.eps_src, self.eps_dst, strict=True):
            eps[source].append(target)
        masks = self.masks
        for source, mask, target in zip(self.byte_src, self.byte_mask, self.byte_dst, strict=True):
            byte_edges[source].append((masks[mask], target))
        for source, rule, target in zip(self.call_src, self.call_rule, self.call_dst, strict=True):
            calls[source].append((rule, target))
        return eps, byte_edges, calls


@dataclasses.dataclass(frozen=True)
class Fragment:
    """The edges one emission of a rule-free expression appended, with its states numbered from 0 and
    its entry as -1: emitting the expression from any entry appends these edges, shifted. Byte edges name
    their byte sets by index into `masks` (first appearance), so that a replay interns each distinct set
    once and copies the edges' ids without a Python step per edge."""

    size: int
    exit_state: int
    eps: tuple[list[int], list[int]]
    byte: tuple[list[int], list[int], list[int]]  # sources, indices into `masks`, targets
    masks: tuple[int, ...]

    @classmethod
    def recorded(cls, nfa: NFA, start: Mark, entry: int, exit_state: int) -> Fragment | None:
        """None if the emission touched a state older than the fragment other than its entry (it cannot
        be replayed elsewhere)."""
        first = start[0]
        eps, byte = slice(start[1], None), slice(start[2], None)
        appended = (nfa.eps_src[eps], nfa.eps_dst[eps], nfa.byte_src[byte], nfa.byte_dst[byte])
        if len(nfa.call_src) != start[3] or any(s < first and s != entry for edges in appended for s in edges):
            return None

        def local(states: list[int]) -> list[int]:
            return [s - first if s >= first else -1 for s in states]

        indices, masks = local_masks([nfa.masks[m] for m in nfa.byte_mask[byte]])
        return cls(
            nfa.size - first,
            exit_state - first if exit_state >= first else -1,
            (local(appended[0]), local(appended[1])),
            (local(appended[2]), indices, local(appended[3])),
            masks,
        )

    @classmethod
    def of_dfa(cls, dfa: RuleDFA) -> Fragment:
        """The fragment of a rule-free expression's minimized DFA: its states (the entry's epsilon edge into
        the start state), byte edges, and an epsilon edge from each accepting state to a fresh exit."""
        exit_state = dfa.num_states
        sources, edge_masks, targets = [], [], []
        for state, row in enumerate(dfa.byte_edges):
            for mask, target in row:
                sources.append(state)
                edge_masks.append(mask)
                targets.append(target)
        finals = [state for state, accepting in enumerate(dfa.accepting) if accepting]
        indices, masks = local_masks(edge_masks)
        return cls(
            exit_state + 1,
            exit_state,
            ([-1, *finals], [0] + [exit_state] * len(finals)),
            (sources, indices, targets),
            masks,
        )

    @functools.cached_property
    def _gather(self):
        """ids (one per entry of `masks`) -> the byte edges' ids, in C (operator.itemgetter)."""
        indices = self.byte[1]
        if len(indices) < 2:
            return lambda ids: [ids[i] for i in indices]
        return operator.itemgetter(*indices)

    def replay(self, nfa: NFA, entry: int) -> int:
        nfa._check_room(self.size)
        base = nfa.size
        nfa.eps_src += [entry if s < 0 else s + base for s in self.eps[0]]
        nfa.eps_dst += [entry if s < 0 else s + base for s in self.eps[1]]
        nfa.byte_src += [entry if s < 0 else s + base for s in self.byte[0]]
        nfa.byte_mask += self._gather([nfa.mask_id(mask) for mask in self.masks])
        nfa.byte_dst += [entry if s < 0 else s + base for s in self.byte[2]]
        nfa.size += self.size
        return entry if self.exit_state < 0 else self.exit_state + base


def local_masks(edge_masks: list[int]) -> tuple[list[int], tuple[int, ...]]:
    """Each edge's byte set as an index into the distinct sets, numbered by first appearance."""
    index: dict[int, int] = {}
    return [index.setdefault(mask, len(index)) for mask in edge_masks], tuple(index)


@dataclasses.dataclass
class RuleNFAs:
    """A grammar's Thompson NFA, every rule in one state space: `names[0]` is the start rule, the called
    (recursive) rules follow in name order, `entries[k]` / `finals[k]` are rule k's first and final states."""

    names: list[str]
    nfa: NFA
    entries: list[int]
    finals: list[int]
