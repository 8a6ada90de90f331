"""What a history policy decides for each item, and why."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal, Protocol

from ..items import ContextItem

Action = Literal["keep", "summarize", "evict", "supersede", "dedup"]


@dataclasses.dataclass(frozen=True)
class CompressionDecision:
    """A policy's verdict on one history item: the new text (None when evicted) and the reason."""

    item_id: str
    turn: int
    policy: str
    action: Action
    reason: str
    text: str | None


@dataclasses.dataclass
class HistoryView:
    """The history as the next render will show it: each item's current text, None once evicted."""

    items: list[ContextItem]
    texts: dict[str, str | None]
    current_turn: int
    decisions: list[CompressionDecision] = dataclasses.field(default_factory=list)
    # item_id -> (level, what it protects): the budget fitter cuts these only after every other history item
    protected: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, items: Sequence[ContextItem], current_turn: int) -> HistoryView:
        return cls(list(items), {i.item_id: i.content for i in items}, current_turn)

    def live(self) -> list[ContextItem]:
        return [i for i in self.items if self.texts[i.item_id] is not None]

    def text(self, item: ContextItem) -> str | None:
        return self.texts[item.item_id]

    def decide(self, item: ContextItem, policy: str, action: Action, reason: str, text: str | None) -> None:
        if item.pinned and text is None:
            return  # pinned items are never evicted
        self.texts[item.item_id] = text
        self.decisions.append(CompressionDecision(item.item_id, item.turn, policy, action, reason, text))

    def protect(self, item: ContextItem, policy: str, level: int, constraint: str, reason: str) -> None:
        """Keep `item` and ask the budget fitter to cut it last (after every unprotected item; higher level later)."""
        if level > self.protected.get(item.item_id, (0, ""))[0]:
            self.protected[item.item_id] = (level, constraint)
            self.decisions.append(CompressionDecision(item.item_id, item.turn, policy, "keep", reason, self.text(item)))


class HistoryPolicy(Protocol):
    """Rewrites a history view in place (summaries, evictions, markers), recording a decision for each change."""

    name: str

    def apply(self, view: HistoryView) -> None: ...
