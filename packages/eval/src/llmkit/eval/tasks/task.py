"""`Task`: what to ask (dataset, prompt format), how (solver) and how to grade it (scorer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..data import Dataset
from ..prompting import PromptFormat
from ..scoring.scorers import Scorer
from ..solvers import Solver


@dataclasses.dataclass(frozen=True)
class Curve:
    """A plotted series read from per-k metrics: metric `f"{prefix}{x}"` for each x."""

    prefix: str
    x_label: str
    y_label: str
    kind: str = "line"  # "line" over numeric x, "bars" over categories (one bar per metric)


@dataclasses.dataclass
class Task:
    """One evaluation; `dataset` is loaded only when the task runs."""

    name: str
    dataset: Callable[[], Dataset]
    prompt: PromptFormat
    solver: Solver
    scorer: Scorer
    description: str = ""
    primary_metric: str = "acc"
    curves: Mapping[str, Curve] = dataclasses.field(default_factory=dict)
    # set-level statistics no per-item mean gives (kappa, McNemar, contrast pairs): records in, JSON out
    summarize: Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]] | None = None

    def describe(self) -> dict[str, Any]:
        """The task's configuration as recorded in results.json."""
        return {
            "description": self.description,
            "prompt": dataclasses.asdict(self.prompt),
            "solver": _plain(self.solver),
            "scorer": {"type": type(self.scorer).__name__, **_plain(self.scorer)},
            "primary_metric": self.primary_metric,
        }


def _plain(obj: Any) -> dict[str, Any]:
    if not dataclasses.is_dataclass(obj):
        return {"type": type(obj).__name__}
    out = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        out[field.name] = sorted(value) if isinstance(value, Mapping) else value
    return out
