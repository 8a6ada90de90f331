"""What the orchestrating agents (plan-and-execute, hierarchical) share: events, spans and checkpoints of a
state that is saved whole after every step and resumed from its last save."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from .checkpoints import CheckpointStore, new_run_id
from .errors import CheckpointError
from .events import AgentEvent, EventHandler
from .tracing import Span, Tracer


class NoSpan:
    """Stands in for a span when no tracer is set."""

    def set(self, **attributes: Any) -> None:
        return None


class SavedRun:
    """Mixin: `self.checkpoints`, `self.tracer`, `self.on_event`, `self.on_step`, `self.name`, `self.kind` and
    `fingerprint()` come from the agent."""

    kind = "run"
    name: str
    checkpoints: CheckpointStore | None
    tracer: Tracer | None
    on_event: EventHandler
    on_step: Callable[[Any], None] | None
    fingerprint: Callable[[], str]  # the agent's configuration hash: a resume must match it

    def _start(self, task: str, run_id: str | None) -> str:
        run_id = run_id or new_run_id()
        if self.checkpoints is not None:
            self.checkpoints.start(run_id, self.kind, task, self.fingerprint())
        return run_id

    def _saved_state(self, run_id: str) -> dict[str, Any]:
        if self.checkpoints is None:
            raise CheckpointError("resume needs a checkpoint store (checkpoints=CheckpointStore(path))")
        record = self.checkpoints.record(run_id)
        if record.kind != self.kind or record.fingerprint != self.fingerprint():
            raise CheckpointError(
                f"run {run_id!r} was made by a different {record.kind} agent configuration; resume it with the agent "
                "that started it"
            )
        return self.checkpoints.latest(run_id)[1]

    def _save_state(self, state: Any) -> None:
        """`state` has run_id, status, stop_reason, saves and to_dict(); each save is a new checkpoint row."""
        if self.on_step is not None:
            self.on_step(state)
        if self.checkpoints is None:
            return
        state.saves += 1
        if state.status == "running":
            status = "running"
        else:
            status = "finished" if state.stop_reason == "answer" else "stopped"
        self.checkpoints.save(state.run_id, state.saves, state.to_dict(), status)

    def _emit(self, kind: str, step: int, **data: Any) -> None:
        self.on_event(AgentEvent(kind, self.name, step, data))

    @contextlib.contextmanager
    def _span(self, name: str, parent: Span | None = None, **attributes: Any) -> Iterator[Span | NoSpan]:
        if self.tracer is None:
            yield NoSpan()
            return
        with self.tracer.span(name, parent if isinstance(parent, Span) else None, **attributes) as span:
            yield span
