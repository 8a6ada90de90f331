"""`TaskRegistry`: tasks by name and the scorer types a YAML task names, filled by whoever provides them.

The benchmarks (`tasks.builtin`) and the probe suites (`probes`) each register into it; neither imports
the other, and `catalog` is the one place that puts them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import EvalError

if TYPE_CHECKING:
    from ..scoring.scorers import Scorer
    from .task import Task


class TaskRegistry:
    """Task builders and scorer types by name; a name registered twice is an error naming both sources."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[Callable[[], Task], str]] = {}
        self._scorers: dict[str, tuple[Callable[..., Scorer], str]] = {}

    def add_task(self, name: str, build: Callable[[], Task], *, source: str) -> None:
        _add(self._tasks, "task", name, build, source)

    def add_scorer(self, name: str, scorer_type: Callable[..., Scorer], *, source: str) -> None:
        _add(self._scorers, "scorer", name, scorer_type, source)

    def task(self, name: str) -> Task:
        """A new `Task` from the builder registered as `name`."""
        if name not in self._tasks:
            raise EvalError(f"unknown task {name!r}; built-in tasks: {', '.join(self._tasks)} (or a .yaml file)")
        return self._tasks[name][0]()

    def task_builders(self) -> dict[str, Callable[[], Task]]:
        return {name: build for name, (build, _) in self._tasks.items()}

    def scorer_types(self) -> dict[str, Callable[..., Scorer]]:
        return {name: scorer_type for name, (scorer_type, _) in self._scorers.items()}


def _add(table: dict, kind: str, name: str, value, source: str) -> None:
    if name in table:
        raise EvalError(f"{kind} {name!r} is registered twice: by {table[name][1]} and by {source}")
    table[name] = (value, source)
