"""Correction markers: a later correction supersedes an earlier assertion wherever the history repeats it."""

from __future__ import annotations

import dataclasses
import re

from .base import HistoryView


@dataclasses.dataclass(frozen=True)
class Correction:
    """`claim` (as stated earlier) is wrong from turn `turn` on; `correction` is what holds instead."""

    claim: str
    correction: str
    turn: int
    item_id: str


def marker(correction: Correction) -> str:
    return f"[superseded at turn {correction.turn}: {correction.correction}]"


def apply_corrections(view: HistoryView, corrections: list[Correction]) -> None:
    """Rewrite each earlier mention of a corrected claim as `~~claim~~ [superseded at turn N: ...]`."""
    for correction in corrections:
        pattern = re.compile(re.escape(correction.claim), re.IGNORECASE)
        note = marker(correction)
        for item in view.items:
            text = view.text(item)
            if item.item_id == correction.item_id or item.turn > correction.turn or text is None:
                continue
            if pattern.search(text):
                rewritten = pattern.sub(lambda m, note=note: f"~~{m.group(0)}~~ {note}", text)
                view.decide(
                    item,
                    "corrections",
                    "supersede",
                    f"states {correction.claim!r}, corrected at turn {correction.turn}",
                    rewritten,
                )


def apply_corrections_to_text(text: str, corrections: list[Correction]) -> str:
    """The same rewrite for text outside the history (the rolling summary): every mention of a corrected claim."""
    for correction in corrections:
        pattern = re.compile(re.escape(correction.claim), re.IGNORECASE)
        text = pattern.sub(lambda m, note=marker(correction): f"~~{m.group(0)}~~ {note}", text)
    return text
