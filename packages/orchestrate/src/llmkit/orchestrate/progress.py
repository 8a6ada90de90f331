"""Live progress of a run on the terminal: one line per step, tool call and result, a spinner meanwhile."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from .events import AgentEvent


def _short(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class LiveProgress:
    """An event handler (`on_event=`) that narrates the run on stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._status: Status | None = None

    def _spin(self, text: str | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if text is not None and self.console.is_terminal:
            self._status = self.console.status(text, spinner="dots")
            self._status.start()

    def __call__(self, event: AgentEvent) -> None:
        print_ = self.console.print
        data, who = event.data, f"[bold]{escape(event.agent)}[/bold]"
        if event.kind == "run_started":
            print_(f"{who} run {data.get('run_id', '')}: {escape(_short(data.get('task', '')))}")
        elif event.kind == "step_started":
            self._spin(f"{event.agent} step {event.step}: the model is thinking")
        elif event.kind == "model_replied":
            self._spin(None)
            calls = ", ".join(data.get("calls", [])) or "no tool call"
            print_(
                f"  step {event.step}: {escape(calls)}"
                + ("" if data.get("calls") else f": {escape(_short(data.get('text', '')))}")
            )
        elif event.kind == "tool_started":
            print_(f"    → {escape(data['name'])} {escape(_short(data.get('arguments', {})))}")
        elif event.kind == "tool_finished":
            colour = "green" if data.get("status") == "ok" else "yellow"
            print_(f"    ← [{colour}]{data.get('status')}[/{colour}] {escape(_short(data.get('content', '')))}")
        elif event.kind == "handoff_checked" and not data.get("problems"):
            return  # a passed check is not news
        elif event.kind in ("intervention", "checkpoint_failed", "replanned", "handoff_checked"):
            detail = data.get("message") or data.get("reason") or data.get("problems") or data
            print_(f"  [yellow]{event.kind.replace('_', ' ')}[/yellow]: {escape(_short(detail))}")
        elif event.kind in ("plan_made", "handoff", "delegated"):
            print_(f"  [cyan]{event.kind.replace('_', ' ')}[/cyan]: {escape(_short(data))}")
        elif event.kind == "run_finished":
            self._spin(None)
            colour = "green" if data.get("stop_reason") == "answer" else "red"
            print_(f"{who} [{colour}]{data.get('stop_reason')}[/{colour}]: {escape(_short(data.get('detail', '')))}")
