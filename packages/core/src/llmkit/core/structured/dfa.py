"""One rule's DFA: the data type, byte atoms, and minimization (Moore refinement over a dense table)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..ops.dispatch import implementation, register_reference

REFINE_OP = "dfa_refine"  # `refine` below is its reference; llmkit-kernels registers a native one
FULL_MINIMIZATION_LIMIT = 3_000  # larger DFAs get the cheap sound reduction (merge_identical_rows)


@dataclasses.dataclass
class RuleDFA:
    """States 0..n-1 (start 0): accepting flags, byte edges (mask, target), call edges (rule name, target)."""

    name: str
    accepting: list[bool]
    byte_edges: list[list[tuple[int, int]]]
    call_edges: list[list[tuple[str, int]]]

    @property
    def num_states(self) -> int:
        return len(self.accepting)


def atoms_of(masks: set[int]) -> list[int]:
    """The coarsest partition of the bytes such that every mask is a union of parts."""
    key = frozenset(masks)
    if key not in _ATOMS:
        _ATOMS[key] = _compute_atoms(masks)
        if len(_ATOMS) > 4096:
            _ATOMS.clear()
    return _ATOMS.get(key) or _compute_atoms(masks)


_ATOMS: dict[frozenset[int], list[int]] = {}


def _compute_atoms(masks: set[int]) -> list[int]:
    atoms: list[int] = []
    covered = 0
    for mask in masks:
        refined = []
        for atom in atoms:
            inside, outside = atom & mask, atom & ~mask
            refined.extend(x for x in (inside, outside) if x)
        fresh = mask & ~covered
        if fresh:
            refined.append(fresh)
        covered |= mask
        atoms = refined
    return atoms


_ATOM_INDICES: dict[tuple[tuple[int, ...], int], list[int]] = {}


def atom_indices(atoms: list[int], mask: int) -> list[int]:
    """Which atoms make up `mask` (memoized: the same few masks recur in every state)."""
    key = (tuple(atoms), mask)
    hit = _ATOM_INDICES.get(key)
    if hit is None:
        if len(_ATOM_INDICES) > 65536:
            _ATOM_INDICES.clear()
        hit = _ATOM_INDICES[key] = [k for k, atom in enumerate(atoms) if atom & mask]
    return hit


def dense_table(dfa: RuleDFA) -> tuple[np.ndarray, list[int], list[str]]:
    """[n + 1, symbols] transitions with a dead sink at row n: byte atoms first, then callees."""
    atoms = atoms_of({mask for row in dfa.byte_edges for mask, _ in row})
    callees = sorted({rule for row in dfa.call_edges for rule, _ in row})
    n = dfa.num_states
    table = np.full((n + 1, len(atoms) + len(callees)), n, dtype=np.int64)
    column = {rule: len(atoms) + k for k, rule in enumerate(callees)}
    for s in range(n):
        for mask, target in dfa.byte_edges[s]:
            for k in atom_indices(atoms, mask):
                table[s, k] = target
        for rule, target in dfa.call_edges[s]:
            table[s, column[rule]] = target
    return table, atoms, callees


def row_ids(matrix: np.ndarray) -> np.ndarray:
    """Equal rows get equal ids (dense, in sorted order): an exact, fast replacement for unique(axis=0)."""
    order = np.lexsort(matrix.T[::-1])
    ordered = matrix[order]
    starts = np.ones(len(order), dtype=np.int64)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = np.cumsum(starts) - 1
    return ids


def refine(table: np.ndarray, initial: np.ndarray, max_rounds: int | None = None) -> np.ndarray:
    """Moore partition refinement: block ids of rows that no string of symbols (of length <= max_rounds,
    or any length) tells apart, starting from the `initial` partition."""
    blocks = row_ids(np.asarray(initial).reshape(-1, 1))
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        refined = row_ids(np.concatenate([blocks[:, None], blocks[table]], axis=1))
        rounds += 1
        if refined.max() == blocks.max():
            return refined
        blocks = refined
    return blocks


register_reference(REFINE_OP, refine)


def merge_identical_rows(table: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Merge states whose accepting flag and successors are identical, until nothing changes: always
    sound, and enough for the large, nearly minimal DFAs of long bounded repetitions."""
    ids = np.arange(len(table))
    while True:
        merged = row_ids(np.concatenate([np.asarray(initial)[:, None], ids[table]], axis=1))
        if merged.max() == ids.max():
            return merged
        ids = merged


def minimize(dfa: RuleDFA, exact: bool = False) -> RuleDFA:
    """The minimal DFA of the same language (above FULL_MINIMIZATION_LIMIT states identical rows are
    merged instead, unless `exact`), trimmed, states numbered breadth first."""
    table, atoms, callees = dense_table(dfa)
    n = dfa.num_states
    initial = np.array([*(int(a) for a in dfa.accepting), 2])  # the sink is its own block
    if exact or n <= FULL_MINIMIZATION_LIMIT:
        blocks = implementation(REFINE_OP, "cpu")(table, initial)
    else:
        blocks = merge_identical_rows(table, initial)
    live = _live_states(dfa)
    new_id: dict[int, int] = {}
    representative: list[int] = []
    for s in _bfs_order(dfa):
        if s in live and blocks[s] not in new_id:
            new_id[blocks[s]] = len(representative)
            representative.append(s)
    if not representative or 0 not in live:
        return RuleDFA(dfa.name, [False], [[]], [[]])
    accepting, byte_edges, call_edges = [], [], []
    for s in representative:
        accepting.append(dfa.accepting[s])
        merged: dict[int, int] = {}
        for k, atom in enumerate(atoms):
            t = int(table[s, k])
            if t < n and t in live:
                merged[new_id[blocks[t]]] = merged.get(new_id[blocks[t]], 0) | atom
        byte_edges.append([(mask, t) for t, mask in merged.items()])
        calls = []
        for k, rule in enumerate(callees):
            t = int(table[s, len(atoms) + k])
            if t < n and t in live:
                calls.append((rule, new_id[blocks[t]]))
        call_edges.append(calls)
    return RuleDFA(dfa.name, accepting, byte_edges, call_edges)


def _bfs_order(dfa: RuleDFA) -> list[int]:
    order, seen = [0], {0}
    for s in order:
        for t in [t for _, t in dfa.byte_edges[s]] + [t for _, t in dfa.call_edges[s]]:
            if t not in seen:
                seen.add(t)
                order.append(t)
    return order


def _live_states(dfa: RuleDFA) -> set[int]:
    """States reachable from the start that can still reach an accepting state."""
    reachable = set(_bfs_order(dfa))
    preds: dict[int, list[int]] = {}
    for s in range(dfa.num_states):
        for t in [t for _, t in dfa.byte_edges[s]] + [t for _, t in dfa.call_edges[s]]:
            preds.setdefault(t, []).append(s)
    live = {s for s in range(dfa.num_states) if dfa.accepting[s]}
    stack = list(live)
    while stack:
        for p in preds.get(stack.pop(), []):
            if p not in live:
                live.add(p)
                stack.append(p)
    return live & reachable
