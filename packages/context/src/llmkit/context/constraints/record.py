"""Stated constraints as the state object records them: wording, turn, and what superseded them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from ..errors import ContextError
from ..state import StateObject

# The state path that holds the record. The window's state zone leaves it out (the reminders zone
# renders the active constraints); session files and handoff packets carry the whole record.
STATE_KEY = "user_constraints"

_STOPWORD_TEXT = """a an the and or but so to of in on at for with from by about as is are was were be been am i i'm me
my you your it its this that these those there here any anything everything something some no not do does don't dont
did never always please just also only now then again really very much more most can can't cannot could should would
will must need want like use using make sure suggest suggestion give answer actually instead anymore longer fine ok
okay allowed changed mind scratch forget what said turn out eat have has had drink thing stuff one all every"""


def _fold(word: str) -> str:
    """A crude singular: "peanuts" -> "peanut" (not "glass" or "gas")."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


_STOPWORDS = frozenset(_fold(w) for w in _STOPWORD_TEXT.split())


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry the subject (stopwords and instruction verbs removed, plural -s folded)."""
    return {_fold(w) for w in re.findall(r"[a-z][a-z'-]*[a-z]|[a-z]", text.lower())} - _STOPWORDS


@dataclasses.dataclass(frozen=True)
class StatedConstraint:
    """A constraint or preference the user stated at `turn`, in their own words; superseded once corrected."""

    text: str
    kind: str  # "constraint" | "preference"
    turn: int
    item_id: str
    source: str  # "rules:<rule>", "rules:correction", "lm" or "correct()"
    superseded_at: int | None = None
    superseded_by: str | None = None

    @property
    def active(self) -> bool:
        return self.superseded_at is None

    def anchor_line(self) -> str:
        """How the reminders zone states it: the user's wording, with its turn."""
        what = "a preference the user stated" if self.kind == "preference" else "stated by the user"
        return f"{self.text} ({what} at turn {self.turn})"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> StatedConstraint:
        try:
            return cls(**data)
        except TypeError as err:
            raise ContextError(f"bad stated constraint record {data!r}: {err}") from None


def read_record(state: StateObject) -> list[StatedConstraint]:
    return [StatedConstraint.from_dict(d) for d in state.get(STATE_KEY, [])]


def write_record(state: StateObject, records: Sequence[StatedConstraint]) -> None:
    state.set(STATE_KEY, [r.to_dict() for r in records])


def superseded_target(text: str, corrects: str | None, active: Sequence[StatedConstraint]) -> StatedConstraint | None:
    """The active constraint a correction takes back: the one sharing the most content words (newest on ties)."""
    words = content_words(text) | content_words(corrects or "")
    best, best_overlap = None, 0
    for record in active:
        overlap = len(words & content_words(record.text))
        if overlap and overlap >= best_overlap:
            best, best_overlap = record, overlap
    return best
