"""A hierarchical run at a step boundary: the objectives, their results so far, the objective in progress."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..run_state import RunState


@dataclasses.dataclass
class HierarchyState(RunState):
    """Everything a resumed hierarchical run needs, as JSON; `inner` holds the tactical planner's state while an
    objective is in progress, `steps` counts operator (ReAct) steps over the whole run."""

    objectives: list[dict[str, Any]] | None = None
    position: int = 0  # index in `objectives` of the next one to pursue
    results: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # ResultSummary per objective
    decompositions: int = 0
