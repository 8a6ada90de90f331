"""Selective eviction: drop whole turns that later turns never refer to, and abandoned approaches."""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict

from ..items import ContextItem
from .base import HistoryView

# Terms that make a turn referable: `code spans`, dotted/underscored names, CamelCase, file names,
# numbers of two or more digits, ALL-CAPS words, and long words.
_SALIENT = re.compile(
    r"`([^`\n]+)`"
    r"|\b([A-Za-z_][\w-]*(?:[./_][\w-]+)+)\b"
    r"|\b([a-z]+[A-Z][A-Za-z0-9]*|[A-Z][a-z]+[A-Z][A-Za-z0-9]*)\b"
    r"|\b(\d{2,}(?:\.\d+)?)\b"
    r"|\b([A-Z]{3,})\b"
    r"|\b([A-Za-z]{9,})\b"
)
_CONSTRAINT = re.compile(r"\b(must|never|always|do not|don't|required?|only)\b", re.IGNORECASE)


def salient_terms(text: str) -> set[str]:
    """The distinctive terms of a text, lower-cased (what a later turn would repeat to refer back)."""
    return {next(g for g in m.groups() if g).lower() for m in _SALIENT.finditer(text)}


@dataclasses.dataclass
class SelectiveEviction:
    """Evict abandoned turns at once, and turns at least `min_age` old that no later turn refers to.

    A turn that states a constraint (must, never, always, only ...) or holds a pinned item is kept; a
    constraint turn is also protected, so the budget fitter cuts it only after every unprotected item.
    """

    min_age: int = 4
    name: str = "selective_eviction"

    def apply(self, view: HistoryView) -> None:
        turns: dict[int, list[ContextItem]] = defaultdict(list)
        for item in view.live():
            turns[item.turn].append(item)
        later_text = ""  # text of every turn after the one being judged, built newest first
        for turn in sorted(turns, reverse=True):
            items = turns[turn]
            texts = [view.text(i) or "" for i in items]
            abandoned = next((i.metadata["abandoned"] for i in items if i.metadata.get("abandoned")), None)
            if abandoned:
                for item in items:
                    view.decide(item, self.name, "evict", f"abandoned approach: {abandoned}", None)
            elif view.current_turn - turn >= self.min_age and not any(i.pinned for i in items):
                self._judge_reference(view, turn, items, texts, later_text)
            later_text = "\n".join(texts) + "\n" + later_text

    def _judge_reference(
        self, view: HistoryView, turn: int, items: list[ContextItem], texts: list[str], later_text: str
    ) -> None:
        stating = [(i, t) for t, i in zip(texts, items, strict=True) if i.role == "user" and _CONSTRAINT.search(t)]
        if stating:
            for item, text in stating:
                view.protect(
                    item, self.name, 1, text, f"turn {turn} states a constraint: kept, and cut last for budget"
                )
            return
        terms = salient_terms("\n".join(texts))
        later = later_text.lower()
        referenced = sorted(t for t in terms if t in later)
        if referenced:
            return
        why = "no distinctive term of it appears later" if terms else "small talk: nothing in it to refer back to"
        for item in items:
            view.decide(item, self.name, "evict", f"turn {turn} never referenced again ({why})", None)
