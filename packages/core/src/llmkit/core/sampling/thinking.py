"""A thinking budget: once a reply has spent `max_tokens` tokens inside an open thinking section
(`<think>` ... `</think>`), its next tokens are forced to the closing tag's ids, then decoding goes on.

Whether to force, and which token, is a pure function of the sequence's output ids (and whether the
prompt left the section open), so it holds unchanged across prefix caching, preemption and recompute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ..errors import InvalidParameterError


@dataclasses.dataclass(frozen=True)
class ThinkingBudget:
    """`max_tokens` thinking tokens at most in the reply's first thinking section. `open_ids` / `close_ids`
    are the tags' token ids; `starts_open` when the prompt itself ends inside an open section."""

    max_tokens: int
    open_ids: tuple[int, ...]
    close_ids: tuple[int, ...]
    starts_open: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 0):
            raise InvalidParameterError(f"a thinking budget must be an integer >= 0, got {self.max_tokens!r}")
        if not self.open_ids or not self.close_ids:
            raise InvalidParameterError("a thinking budget needs the token ids of both thinking tags")
        object.__setattr__(self, "open_ids", tuple(int(t) for t in self.open_ids))
        object.__setattr__(self, "close_ids", tuple(int(t) for t in self.close_ids))

    def forced_token(self, output_ids: Sequence[int]) -> int | None:
        """The token the next position must hold (a closing-tag token), or None when decoding is free."""
        start = 0 if self.starts_open else _end_of(output_ids, self.open_ids, 0)
        if start is None:
            return None  # no section opened (yet)
        spent = len(output_ids) - start
        if spent < self.max_tokens:
            return None
        close = self.close_ids
        # A section closed within the budget (or by the tokens forced so far) leaves the rest free.
        window = output_ids[start : start + self.max_tokens + len(close)]
        if _end_of(window, close, 0) is not None:
            return None
        forced_so_far = spent - self.max_tokens
        return close[forced_so_far] if forced_so_far < len(close) else None


def _end_of(ids: Sequence[int], pattern: tuple[int, ...], start: int) -> int | None:
    """Index just past the first occurrence of `pattern` in `ids[start:]`, or None."""
    first, size = pattern[0], len(pattern)
    ids = ids if isinstance(ids, list) else list(ids)
    position = start
    while True:
        try:
            position = ids.index(first, position)
        except ValueError:
            return None
        if tuple(ids[position : position + size]) == pattern:
            return position + size
        position += 1


def force_thinking_budgets(
    logits: torch.Tensor, budgets: Sequence[ThinkingBudget | None], outputs: Sequence[Sequence[int]]
) -> None:
    """In place: each row whose budget forces a token keeps only that token (logit 0, the rest -inf)."""
    for row, (budget, output) in enumerate(zip(budgets, outputs, strict=True)):
        if budget is None:
            continue
        token = budget.forced_token(output)
        if token is not None:
            logits[row].fill_(float("-inf"))
            logits[row, token] = 0.0
