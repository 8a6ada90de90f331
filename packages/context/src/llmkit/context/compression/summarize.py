"""Rolling summarization: the live window stays verbatim, older turns fold into a five-field structured summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..errors import ContextError
from ..items import ContextItem
from ..structured import StructuredGenerator
from ..summary import TurnSummary, render_summary

SUMMARIZER_SYSTEM = (
    "You maintain a structured summary of a conversation between a user and an assistant. "
    "Fold the new turns into the previous summary. Keep every constraint the user set unless the user "
    "explicitly lifted it; record decisions, what was tried and what happened, and where things stand."
)


def _transcript(items: Sequence[ContextItem]) -> str:
    return "\n".join(f"[turn {i.turn}] {i.role}: {i.content}" for i in items)


class Summarizer:
    """Builds a `TurnSummary` from a previous summary plus newly aged turns through a structured generator."""

    def __init__(self, structured: StructuredGenerator):
        self.structured = structured

    def summarize(
        self,
        previous: TurnSummary | None,
        through_turn: int,
        turns: Sequence[ContextItem],
        objective: str | None = None,
        constraints: Sequence[str] = (),
        superseded: Sequence[str] = (),
    ) -> TurnSummary:
        parts = []
        if objective:
            parts.append(f"The stated objective: {objective}")
        if previous is not None:
            parts.append("Previous summary:\n" + render_summary(previous, through_turn))
        parts.append("New turns to fold in:\n" + _transcript(turns))
        messages = [{"role": "system", "content": SUMMARIZER_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]
        summary = self.structured.generate(messages, TurnSummary)
        return keep_constraints(summary, previous, constraints, superseded)


def keep_constraints(
    summary: TurnSummary, previous: TurnSummary | None, pinned: Sequence[str], superseded: Sequence[str] = ()
) -> TurnSummary:
    """A summary never loses a constraint: the previous summary's and the window's pinned ones are carried over.

    Only a constraint the user took back (`superseded`, word for word) leaves the summary's list.
    """
    gone = {c.strip().lower() for c in superseded}
    kept = [c for c in summary.constraints if c.strip().lower() not in gone]
    for constraint in [*(previous.constraints if previous else []), *pinned]:
        key = constraint.strip().lower()
        if key not in gone and key not in {c.strip().lower() for c in kept}:
            kept.append(constraint)
    return summary.model_copy(update={"constraints": kept})


@dataclasses.dataclass
class RollingSummary:
    """Keep the last `live_turns` turns verbatim; fold older ones into the summary `fold_every` turns at a time.

    Folding in batches keeps the summary message (and the cached prefix behind it) stable between folds.
    """

    summarizer: Summarizer
    live_turns: int = 6
    fold_every: int = 4

    def __post_init__(self) -> None:
        if self.live_turns < 1 or self.fold_every < 1:
            raise ContextError(f"live_turns and fold_every must be >= 1, got {self.live_turns}, {self.fold_every}")

    def due(self, window) -> bool:
        """Whether enough turns have aged out of the live window to fold."""
        return window.turn - self.live_turns - window.summarized_through >= self.fold_every

    def maybe_fold(self, window, force: bool = False) -> bool:
        """Fold aged-out turns into `window.summary` when due (or forced); returns whether it folded."""
        through = window.turn - self.live_turns
        if through <= window.summarized_through or not (force or self.due(window)):
            return False
        aged = [i for i in window.history if window.summarized_through < i.turn <= through]
        superseded = [r.text for r in window.stated_constraints if not r.active]
        window.summary = self.summarizer.summarize(
            window.summary,
            window.summarized_through,
            aged,
            window.objective,
            window.anchored_constraints(),  # the window's own and the user's stated constraints
            superseded,
        )
        window.summarized_through = through
        return True
