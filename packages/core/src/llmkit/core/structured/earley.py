"""The Earley chart over rule DFAs (the reference): items are (DFA state, origin position).

Scan on byte edges, predict on call edges, complete on accepting states. Called rules never
match the empty string (see automata.py), so no completion happens at the position where a
rule was predicted. One item set per byte position; truncating the chart is rollback.
"""

from __future__ import annotations

from .budget import UNREACHABLE
from .compiled import CompiledGrammar

Item = tuple[int, int]  # (global DFA state, origin position)


class EarleyChart:
    def __init__(self, grammar: CompiledGrammar):
        self.grammar = grammar
        self._starts = grammar.rule_start.tolist()
        self._rules = grammar.state_rule.tolist()
        self._accepting = grammar.accepting.tolist()
        self._table = grammar.transitions.tolist()
        self._classes = grammar.byte_class.tolist()
        self._calls = [grammar.calls(s) for s in range(grammar.num_states)]
        self.sets: list[list[Item]] = []
        self.waiting: list[dict[int, list[Item]]] = []  # per position: rule -> (return state, origin) of callers
        self._add_set([(self._starts[0], 0)])

    @property
    def position(self) -> int:
        return len(self.sets) - 1

    def _add_set(self, kernel: list[Item]) -> None:
        position = len(self.sets)
        order: list[Item] = []
        seen: set[Item] = set()
        waiting: dict[int, list[Item]] = {}
        self.sets.append(order)
        self.waiting.append(waiting)
        work = list(reversed(kernel))
        while work:
            item = work.pop()
            if item in seen:
                continue
            seen.add(item)
            order.append(item)
            state, origin = item
            for rule, target in self._calls[state]:
                waiting.setdefault(rule, []).append((target, origin))
                work.append((self._starts[rule], position))
            if self._accepting[state] and origin < position:
                for target, caller_origin in self.waiting[origin].get(self._rules[state], ()):
                    work.append((target, caller_origin))

    def scan(self, byte: int) -> bool:
        """Advance over one byte; False (chart unchanged) if no item can read it."""
        cls = self._classes[byte]
        kernel = []
        for state, origin in self.sets[-1]:
            target = self._table[state][cls]
            if target >= 0:
                kernel.append((target, origin))
        if not kernel:
            return False
        self._add_set(kernel)
        return True

    def accepts_bytes(self, data: bytes) -> bool:
        """Scan all of `data`, or leave the chart unchanged and return False."""
        for done, byte in enumerate(data):
            if not self.scan(byte):
                self.pop(done)
                return False
        return True

    def pop(self, count: int) -> None:
        if count:
            del self.sets[-count:]
            del self.waiting[-count:]

    def can_finish(self) -> bool:
        """Whether the input so far is a complete match of the start rule."""
        return any(origin == 0 and self._rules[s] == 0 and self._accepting[s] for s, origin in self.sets[-1])

    def finish_cost(self, costs) -> int:
        """The fewest bytes that complete the start rule from here (`costs`: budget.finish_costs)."""
        memo: dict[tuple[int, int], int] = {}

        def above(origin: int, rule: int) -> int:  # bytes to finish every caller once `rule` completes
            if rule == 0:
                return 0
            key = (origin, rule)
            if key not in memo:
                memo[key] = UNREACHABLE
                best = UNREACHABLE
                for target, caller_origin in self.waiting[origin].get(rule, ()):
                    best = min(best, int(costs[target]) + above(caller_origin, self._rules[target]))
                memo[key] = best
            return memo[key]

        return min((int(costs[s]) + above(o, self._rules[s]) for s, o in self.sets[-1]), default=UNREACHABLE)

    def next_bytes(self) -> set[int]:
        """Bytes some item can scan next."""
        classes = {c for s, _ in self.sets[-1] for c, t in enumerate(self._table[s]) if t >= 0}
        return {b for b in range(256) if self._classes[b] in classes}

    def root_states(self) -> list[int]:
        """States of the items the token masks start from: those not predicted at this position."""
        position = self.position
        roots = []
        for state, origin in self.sets[-1]:
            if (origin < position or (position == 0 and self._rules[state] == 0)) and state not in roots:
                roots.append(state)
        return roots
