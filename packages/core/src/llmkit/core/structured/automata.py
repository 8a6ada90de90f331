"""IR -> the grammar's Thompson NFA (`rule_nfas`), which `grammar_tables` turns into one DFA per rule over
bytes and "call rule" symbols.

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
import threading

from .dfa import RuleDFA
from .ir import Alt, Avoid, Bytes, Exclude, Expr, Grammar, GrammarError, Ref, Repeat, Seq, nullable_rules, references
from .nfa import NFA, START_RULE, Fragment, RuleNFAs
from .subsets import determinize

DEAD = object()  # a product automaton's "no way on"
MIN_REPLAYED_COPIES = 4  # shorter repetitions are emitted copy by copy


@dataclasses.dataclass(frozen=True)
class _Known:
    """What the process knows of one rule-free expression: the compilation that first emitted it, the
    states that emission made, and a fragment to replay (None: emit it)."""

    expr: Expr  # held, so that its id cannot be reused while the entry lives
    compilation: int
    states: int
    fragment: Fragment | None = None
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

    def emit(self, nfa: NFA, expr: Expr, entry: int) -> int:
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
                known = self._remember(key, dataclasses.replace(known, fragment=minimal_fragment(expr), minimal=True))
            if known.fragment is not None:
                return known.fragment.replay(nfa, entry)
        start = nfa.mark()
        exit_state = self.emit_new(nfa, expr, entry)
        if known is None:
            self._remember(key, _Known(expr, self.compilation, nfa.size - start[0]))
        elif known.states >= MIN_FRAGMENT_STATES:  # emitted twice in this compilation: replay the third time
            self._remember(key, dataclasses.replace(known, fragment=Fragment.recorded(nfa, start, entry, exit_state)))
        return exit_state

    @staticmethod
    def _remember(key: int, known: _Known) -> _Known:
        with _KNOWN_LOCK:
            _KNOWN[key] = known
            while len(_KNOWN) > MAX_FRAGMENTS:
                _KNOWN.popitem(last=False)
        return known

    def emit_new(self, nfa: NFA, expr: Expr, entry: int) -> int:
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

    def emit_copies(self, nfa: NFA, item: Expr, entry: int, count: int) -> list[int]:
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

    def emit_exclusion(self, nfa: NFA, expr: Exclude, entry: int) -> int:
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

    def emit_avoidance(self, nfa: NFA, expr: Avoid, entry: int) -> int:
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
        inner = NFA()
        inner_start = inner.new()
        final = self.emit_new(inner, item, inner_start)  # not `emit`: that may ask for this very DFA
        if inner.call_src:
            raise GrammarError("an exclusion or avoidance cannot contain recursive rules")
        return determinize(inner, inner_start, final, "product")

    def emit_product(self, nfa: NFA, item: Expr, entry: int, start, relevant, step, default, accepting) -> int:
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


def minimal_fragment(expr: Expr) -> Fragment | None:
    """The fragment of a shared piece's minimized DFA (not cached by content: callers key it by identity);
    None if the piece is too large to determinize alone (it is then emitted as it is)."""
    try:
        return Fragment.of_dfa(_Builder(Grammar({}, ""), set(), set()).item_dfa(expr))
    except GrammarError:
        return None


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


@dataclasses.dataclass
class NfaPlan:
    """What a grammar's rule NFAs are built from: the rules the start rule reaches (`START_RULE` among them,
    referring to the root), the rules kept as call edges (recursive, or asked for) and the nullable rules.
    `rule_nfas` builds from it in Python; the native op `grammar_ir_tables` walks the same rules in C++."""

    grammar: Grammar
    called: set[str]
    nullable: set[str]

    def product_fragment(self, expr: Exclude | Avoid) -> Fragment:
        """An exclusion's or avoidance's product automaton, as a fragment to replay from any entry (the native
        builder asks Python for these: the products are rare and built from Python's item DFAs)."""
        nfa = NFA()
        entry = nfa.new()
        exit_state = _Builder(self.grammar, self.called, self.nullable).emit_new(nfa, expr, entry)
        fragment = Fragment.recorded(nfa, (1, 0, 0, 0), entry, exit_state)
        if fragment is None:  # a product links only its entry and fresh states
            raise GrammarError(f"the product of {type(expr).__name__} could not be recorded")
        return fragment


def nfa_plan(grammar: Grammar) -> NfaPlan:
    """The reachable rules of `grammar` under a start rule, with their call and nullability analyses."""
    grammar.check_references()
    rules = dict(grammar.rules)
    rules[START_RULE] = Ref(grammar.root)
    reachable, pending = {START_RULE}, [START_RULE]  # the whole-grammar analyses below skip the others
    while pending:
        for name in references(rules[pending.pop()]):
            if name not in reachable:
                reachable.add(name)
                pending.append(name)
    full = Grammar({name: expr for name, expr in rules.items() if name in reachable}, START_RULE)
    return NfaPlan(full, recursive_rules(full) | set(grammar.called), nullable_rules(full))


def rule_nfas(grammar: Grammar) -> RuleNFAs:
    """The NFA of the start rule and of the recursive rules it reaches (non-recursive rules inlined)."""
    plan = nfa_plan(grammar)
    builder = _Builder(plan.grammar, plan.called, plan.nullable)
    nfa = NFA()
    bounds: dict[str, tuple[int, int]] = {}
    pending = [START_RULE]
    while pending:
        name = pending.pop()
        if name in bounds:
            continue
        nfa.base = nfa.size
        calls_before = len(nfa.call_rule)
        start = nfa.new()
        bounds[name] = (start, builder.emit(nfa, plan.grammar.rules[name], start))
        pending.extend(nfa.call_rule[calls_before:])
    names = [START_RULE, *sorted(n for n in bounds if n != START_RULE)]
    return RuleNFAs(names, nfa, [bounds[n][0] for n in names], [bounds[n][1] for n in names])
