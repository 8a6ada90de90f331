"""IR -> one minimized DFA per rule over bytes and "call rule" symbols.

Every rule that is not part of a recursion cycle is inlined where it is used, so a
non-recursive grammar becomes a single DFA; only references inside recursion cycles stay
call edges. A called rule never matches the empty string (a nullable reference becomes
"call, or skip"), which keeps the Earley matcher free of empty completions.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import operator
import threading

import numpy as np

from .dfa import RuleDFA, atom_indices, atoms_of, minimize
from .ir import Alt, Avoid, Bytes, Exclude, Expr, Grammar, GrammarError, Ref, Repeat, Seq, nullable_rules, references

MAX_NFA_STATES = 200_000
MAX_DFA_STATES = 60_000
START_RULE = "__start__"
DEAD = object()  # a product automaton's "no way on"
MIN_REPLAYED_COPIES = 4  # shorter repetitions are emitted copy by copy
NUMPY_REPLAY_EDGES = 512  # replays of more edges than this (edges x copies) shift the states with numpy
Mark = tuple[int, int, int, int]  # an NFA's size and edge counts at one moment (_NFA.mark)


class _NFA:
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
class _Fragment:
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
    def recorded(cls, nfa: _NFA, start: Mark, entry: int, exit_state: int) -> _Fragment | None:
        """None if the emission touched a state older than the fragment other than its entry (it cannot
        be replayed elsewhere)."""
        first = start[0]
        eps, byte = slice(start[1], None), slice(start[2], None)
        appended = (nfa.eps_src[eps], nfa.eps_dst[eps], nfa.byte_src[byte], nfa.byte_dst[byte])
        if len(nfa.call_src) != start[3] or any(s < first and s != entry for edges in appended for s in edges):
            return None

        def local(states: list[int]) -> list[int]:
            return [s - first if s >= first else -1 for s in states]

        indices, masks = _local_masks([nfa.masks[m] for m in nfa.byte_mask[byte]])
        return cls(
            nfa.size - first,
            exit_state - first if exit_state >= first else -1,
            (local(appended[0]), local(appended[1])),
            (local(appended[2]), indices, local(appended[3])),
            masks,
        )

    @classmethod
    def of_dfa(cls, dfa: RuleDFA) -> _Fragment:
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
        indices, masks = _local_masks(edge_masks)
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

    def replay(self, nfa: _NFA, entry: int) -> int:
        nfa._check_room(self.size)
        base = nfa.size
        nfa.eps_src += [entry if s < 0 else s + base for s in self.eps[0]]
        nfa.eps_dst += [entry if s < 0 else s + base for s in self.eps[1]]
        nfa.byte_src += [entry if s < 0 else s + base for s in self.byte[0]]
        nfa.byte_mask += self._gather([nfa.mask_id(mask) for mask in self.masks])
        nfa.byte_dst += [entry if s < 0 else s + base for s in self.byte[2]]
        nfa.size += self.size
        return entry if self.exit_state < 0 else self.exit_state + base


def _local_masks(edge_masks: list[int]) -> tuple[list[int], tuple[int, ...]]:
    """Each edge's byte set as an index into the distinct sets, numbered by first appearance."""
    index: dict[int, int] = {}
    return [index.setdefault(mask, len(index)) for mask in edge_masks], tuple(index)


@dataclasses.dataclass(frozen=True)
class _Known:
    """What the process knows of one rule-free expression: the compilation that first emitted it, the
    states that emission made, and a fragment to replay (None: emit it)."""

    expr: Expr  # held, so that its id cannot be reused while the entry lives
    compilation: int
    states: int
    fragment: _Fragment | None = None
    minimal: bool = False  # the fragment is the expression's minimized DFA


# Rule-free expressions emitted in this process, keyed by identity (at most MAX_FRAGMENTS, least recently
# used dropped). A piece emitted again within one compilation replays the edges its first emission
# appended; a piece that another compilation emitted too (the pieces every JSON grammar shares: a string's
# characters, escapes, the built-in formats, "any value") is replayed as its minimized DFA, which gives the
# grammar's subset construction 2-3x fewer states to build and minimize (the same language, so the same
# minimal tables). A new schema's own expressions are new objects: they are never replayed from another
# compilation.
_KNOWN: collections.OrderedDict[int, _Known] = collections.OrderedDict()
_KNOWN_LOCK = threading.Lock()
MAX_FRAGMENTS = 4096
MIN_FRAGMENT_STATES = 8  # smaller pieces: emitting costs about what replaying does
_COMPILATIONS = itertools.count()


class _Builder:
    """Thompson construction with inlining of non-recursive rules."""

    def __init__(self, grammar: Grammar, called: set[str], nullable: set[str]):
        self.grammar, self.called, self.nullable = grammar, called, nullable
        self.compilation = next(_COMPILATIONS)

    def emit(self, nfa: _NFA, expr: Expr, entry: int) -> int:
        if isinstance(expr, Bytes | Ref) or references(expr):
            return self.emit_new(nfa, expr, entry)
        key = id(expr)
        with _KNOWN_LOCK:
            known = _KNOWN.get(key)
            if known is not None and known.expr is not expr:
                known = None
            if known is not None:
                _KNOWN.move_to_end(key)
        if known is not None and known.states >= MIN_FRAGMENT_STATES:
            if not known.minimal and known.compilation != self.compilation:
                known = self._remember(key, dataclasses.replace(known, fragment=_minimal_fragment(expr), minimal=True))
            if known.fragment is not None:
                return known.fragment.replay(nfa, entry)
        start = nfa.mark()
        exit_state = self.emit_new(nfa, expr, entry)
        if known is None:
            self._remember(key, _Known(expr, self.compilation, nfa.size - start[0]))
        elif known.states >= MIN_FRAGMENT_STATES:  # emitted twice in this compilation: replay the third time
            self._remember(key, dataclasses.replace(known, fragment=_Fragment.recorded(nfa, start, entry, exit_state)))
        return exit_state

    @staticmethod
    def _remember(key: int, known: _Known) -> _Known:
        with _KNOWN_LOCK:
            _KNOWN[key] = known
            while len(_KNOWN) > MAX_FRAGMENTS:
                _KNOWN.popitem(last=False)
        return known

    def emit_new(self, nfa: _NFA, expr: Expr, entry: int) -> int:
        """Thompson construction of `expr` from `entry` (its sub-expressions through `emit`)."""
        if isinstance(expr, Bytes):
            if expr.mask == 0:
                return nfa.new()  # unreachable exit: matches nothing
            out = nfa.new()
            nfa.byte(entry, expr.mask, out)
            return out
        if isinstance(expr, Seq):
            for item in expr.items:
                entry = self.emit(nfa, item, entry)
            return entry
        if isinstance(expr, Alt):
            join = nfa.new()
            for item in expr.items:
                branch = nfa.new()
                nfa.eps(entry, branch)
                nfa.eps(self.emit(nfa, item, branch), join)
            return join
        if isinstance(expr, Repeat):
            entry = self.emit_copies(nfa, expr.item, entry, expr.min_count)[-1]
            if expr.max_count is None:
                loop = nfa.new()
                nfa.eps(entry, loop)
                nfa.eps(self.emit(nfa, expr.item, loop), loop)
                return loop
            ends = self.emit_copies(nfa, expr.item, entry, expr.max_count - expr.min_count)
            join = nfa.new()
            for end in ends:
                nfa.eps(end, join)
            return join
        if isinstance(expr, Ref):
            if expr.rule not in self.called:
                return self.emit(nfa, self.grammar.rules[expr.rule], entry)
            out = nfa.new()
            nfa.call(entry, expr.rule, out)
            if expr.rule in self.nullable:
                nfa.eps(entry, out)
            return out
        if isinstance(expr, Exclude):
            return self.emit_exclusion(nfa, expr, entry)
        if isinstance(expr, Avoid):
            return self.emit_avoidance(nfa, expr, entry)
        raise GrammarError(f"unknown grammar expression {expr!r}")

    def emit_copies(self, nfa: _NFA, item: Expr, entry: int, count: int) -> list[int]:
        """`item` `count` times in a row from `entry`: [entry, the end of each copy]. The first copy is
        emitted and the others replayed from it, so a long bounded repetition costs one emission."""
        if count < MIN_REPLAYED_COPIES:  # a few copies: emitting them costs less than numpy's setup
            ends = [entry]
            for _ in range(count):
                ends.append(self.emit(nfa, item, ends[-1]))
            return ends
        start = nfa.mark()
        first_exit = self.emit(nfa, item, entry)
        return [entry, first_exit, *nfa.replay_chain(start, nfa.mark(), entry, first_exit, count - 1)]

    def emit_exclusion(self, nfa: _NFA, expr: Exclude, entry: int) -> int:
        """The item's DFA times the trie of excluded words (None: no excluded word can match any more)."""
        continuations: dict[bytes, set[int]] = {}  # prefix of an excluded word -> the bytes that extend it
        for word in expr.words:
            for k in range(len(word)):
                continuations.setdefault(word[:k], set()).add(word[k])

        def step(prefix, byte):
            return prefix + bytes([byte])

        return self.emit_product(
            nfa, expr.item, entry, b"",
            relevant=lambda p: continuations.get(p, ()) if p is not None else (),
            step=step,
            default=lambda p: None,
            accepting=lambda p: p is None or p not in expr.words,
        )  # fmt: skip

    def emit_avoidance(self, nfa: _NFA, expr: Avoid, entry: int) -> int:
        """The item's DFA times the Knuth-Morris-Pratt automaton of the avoided word."""
        word = expr.word
        if not word:
            raise GrammarError("the avoided word must not be empty")
        fail = [0] * (len(word) + 1)
        for i in range(1, len(word)):
            k = fail[i]
            while k and word[i] != word[k]:
                k = fail[k]
            fail[i + 1] = k + 1 if word[i] == word[k] else 0

        def step(matched, byte):
            while matched and word[matched] != byte:
                matched = fail[matched]
            matched = matched + 1 if word[matched] == byte else 0
            return matched if matched < len(word) else DEAD

        return self.emit_product(
            nfa, expr.item, entry, 0,
            relevant=lambda k: set(word),
            step=step,
            default=lambda k: 0,
            accepting=lambda k: True,
        )  # fmt: skip

    def item_dfa(self, item: Expr) -> RuleDFA:
        """The minimized DFA of an exclusion's or avoidance's item, which may not call rules."""
        inner = _NFA()
        inner_start = inner.new()
        final = self.emit_new(inner, item, inner_start)  # not `emit`: that may ask for this very DFA
        if inner.call_src:
            raise GrammarError("an exclusion or avoidance cannot contain recursive rules")
        return determinize(inner, inner_start, final, "product")

    def emit_product(self, nfa: _NFA, item: Expr, entry: int, start, relevant, step, default, accepting) -> int:
        """Embed the product of `item`'s DFA with a small automaton over bytes: `step(aux, byte)` for the
        bytes `relevant(aux)` names, `default(aux)` for the others; DEAD ends the path."""
        dfa = _plain_item_dfa(item) if not references(item) else self.item_dfa(item)
        out = nfa.new()
        nodes: dict[tuple, int] = {}
        pending: list[tuple] = []

        def node_for(key: tuple) -> int:
            if key not in nodes:
                nodes[key] = nfa.new()
                pending.append(key)
                if dfa.accepting[key[0]] and accepting(key[1]):
                    nfa.eps(nodes[key], out)
            return nodes[key]

        nfa.eps(entry, node_for((0, start)))
        while pending:
            key = pending.pop()
            state, aux = key
            special = set(relevant(aux))
            for mask, target in dfa.byte_edges[state]:
                rest = mask
                for byte in special:
                    if mask >> byte & 1:
                        rest &= ~(1 << byte)
                        nxt = step(aux, byte)
                        if nxt is not DEAD:
                            nfa.byte(nodes[key], 1 << byte, node_for((target, nxt)))
                fallback = default(aux)
                if rest and fallback is not DEAD:
                    nfa.byte(nodes[key], rest, node_for((target, fallback)))
        return out


@functools.lru_cache(maxsize=64)
def _plain_item_dfa(item: Expr) -> RuleDFA:
    """`_Builder.item_dfa` of an item that names no rule, shared by every grammar (the JSON key string of
    each object with known keys is one such item). Callers only read it."""
    return _Builder(Grammar({}, ""), set(), set()).item_dfa(item)


def _minimal_fragment(expr: Expr) -> _Fragment | None:
    """The fragment of a shared piece's minimized DFA (not cached by content: callers key it by identity);
    None if the piece is too large to determinize alone (it is then emitted as it is)."""
    try:
        return _Fragment.of_dfa(_Builder(Grammar({}, ""), set(), set()).item_dfa(expr))
    except GrammarError:
        return None


def _bytes_of(mask: int) -> list[int]:
    return [b for b in range(256) if mask >> b & 1]


def _closure(eps: list[list[int]], states: set[int]) -> frozenset[int]:
    stack, seen = list(states), set(states)
    while stack:
        for nxt in eps[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return frozenset(seen)


def determinize(nfa: _NFA, start: int, final: int, name: str) -> RuleDFA:
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


def recursive_rules(grammar: Grammar) -> set[str]:
    """Rules on a reference cycle (Tarjan's strongly connected components)."""
    graph = {name: sorted(references(expr)) for name, expr in grammar.rules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: set[str] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if child < len(graph[node]):
                work.append((node, child + 1))
                nxt = graph[node][child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    result.update(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


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


@dataclasses.dataclass
class RuleNFAs:
    """A grammar's Thompson NFA, every rule in one state space: `names[0]` is the start rule, the called
    (recursive) rules follow in name order, `entries[k]` / `finals[k]` are rule k's first and final states."""

    names: list[str]
    nfa: _NFA
    entries: list[int]
    finals: list[int]


def rule_nfas(grammar: Grammar) -> RuleNFAs:
    """The NFA of the start rule and of the recursive rules it reaches (non-recursive rules inlined)."""
    grammar.check_references()
    rules = dict(grammar.rules)
    rules[START_RULE] = Ref(grammar.root)
    full = Grammar(rules, START_RULE)
    called = recursive_rules(full) | set(grammar.called)
    nullable = nullable_rules(full)
    builder = _Builder(full, called, nullable)
    nfa = _NFA()
    bounds: dict[str, tuple[int, int]] = {}
    pending = [START_RULE]
    while pending:
        name = pending.pop()
        if name in bounds:
            continue
        nfa.base = nfa.size
        calls_before = len(nfa.call_rule)
        start = nfa.new()
        bounds[name] = (start, builder.emit(nfa, full.rules[name], start))
        pending.extend(nfa.call_rule[calls_before:])
    names = [START_RULE, *sorted(n for n in bounds if n != START_RULE)]
    return RuleNFAs(names, nfa, [bounds[n][0] for n in names], [bounds[n][1] for n in names])


def dfas_from_nfas(nfas: RuleNFAs) -> dict[str, RuleDFA]:
    """Each rule's minimized DFA (called rules without the empty string), empty rules pruned."""
    dfas: dict[str, RuleDFA] = {}
    for name, start, final in zip(nfas.names, nfas.entries, nfas.finals, strict=True):
        dfa = determinize(nfas.nfa, start, final, name)
        dfas[name] = _without_empty_start(dfa) if name != START_RULE else dfa
    return _prune_empty_rules(dfas)


def build_rule_dfas(grammar: Grammar) -> dict[str, RuleDFA]:
    """The start rule's DFA and those of the recursive rules it reaches, with empty rules pruned."""
    return dfas_from_nfas(rule_nfas(grammar))


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
