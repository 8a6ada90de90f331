"""Running a step's tool calls: availability, the gate, argument validation, then concurrent execution."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from llmkit.core.assistant_output import ToolCall

from ..errors import ToolArgumentError, ToolError
from .guarding import GuardLike, blocked_arguments, guarded_result, open_guards
from .results import ToolResult, limit_text, render_value
from .tool import Tool
from .toolbox import ToolSet

if TYPE_CHECKING:  # gates imports tools
    from ..gates import Gate

# Called around each execution: on_tool(call, result or None) — None when the call starts.
ToolObserver = Callable[[ToolCall, ToolResult | None], None]


@dataclasses.dataclass
class _Prepared:
    call: ToolCall
    tool: Tool | None = None
    kwargs: dict[str, Any] | None = None
    result: ToolResult | None = None  # decided without running (refused, invalid, unavailable)


class ToolExecutor:
    """Checks every call first, in order (approvals are asked one at a time), then runs the approved
    calls concurrently; the results come back in the order of the calls."""

    def __init__(self, tools: ToolSet, gate: Gate, max_workers: int = 8, guards: Sequence[GuardLike] = ()):
        self.tools, self.gate, self.max_workers = tools, gate, max_workers
        self.guards = open_guards(guards)  # on arguments before a tool runs, on results before the model sees them

    def run(
        self,
        calls: Sequence[ToolCall],
        exposed: Iterable[str],
        step: int,
        observer: ToolObserver | None = None,
        wrap: Callable[[ToolCall, Callable[[], ToolResult]], ToolResult] | None = None,
    ) -> list[ToolResult]:
        exposed = set(exposed)
        prepared = [self._prepare(call, exposed, step) for call in calls]
        runnable = [p for p in prepared if p.result is None]

        def execute(p: _Prepared) -> ToolResult:
            if observer:
                observer(p.call, None)
            result = wrap(p.call, lambda: self._execute(p)) if wrap else self._execute(p)
            result = guarded_result(self.guards, result)
            if observer:
                observer(p.call, result)
            return result

        if len(runnable) == 1:
            runnable[0].result = execute(runnable[0])
        elif runnable:
            with ThreadPoolExecutor(min(self.max_workers, len(runnable)), thread_name_prefix="llmkit-tool") as pool:
                for p, result in zip(runnable, pool.map(execute, runnable), strict=True):
                    p.result = result
        return [p.result for p in prepared]

    def _prepare(self, call: ToolCall, exposed: set[str], step: int) -> _Prepared:
        p = _Prepared(call)
        tool = self.tools.get(call.name)
        if tool is None or call.name not in exposed:
            names = ", ".join(sorted(exposed)) or "none"
            where = "exists" if tool is None else "is available in this phase"
            p.result = self._decided(call, "not_available", f"error: no tool named {call.name!r} {where}; use: {names}")
            return p
        refusal = self.gate.before_validation(call.name)
        if refusal is not None:
            p.result = self._decided(call, "refused", refusal.reason)
            return p
        try:
            kwargs = tool.validate(call.arguments)
        except ToolArgumentError as err:
            message = f"error: invalid arguments for {call.name}: {err}. Fix the arguments and call it again."
            p.result = self._decided(call, "invalid_arguments", message)
            return p
        blocked = blocked_arguments(self.guards, call, kwargs)
        if blocked is not None:
            p.result = self._decided(call, "refused", blocked)
            return p
        decision = self.gate.decide(call.name, kwargs, step)  # the approver sees what will run
        if not decision.allowed:
            p.result = self._decided(call, "refused", decision.reason)
            return p
        p.tool, p.kwargs = tool, kwargs
        return p

    @staticmethod
    def _decided(call: ToolCall, status: str, message: str) -> ToolResult:
        return ToolResult(call.id, call.name, dict(call.arguments), message, status)  # type: ignore[arg-type]

    @staticmethod
    def _execute(p: _Prepared) -> ToolResult:
        started = time.monotonic()
        status = "ok"
        try:
            text = render_value(p.tool.run(p.kwargs))
        except ToolError as err:
            status, text = "error", f"error: {err}"
        except Exception as err:  # a tool's bug is the model's information, not the run's end
            status, text = "error", f"error: {p.call.name} failed: {type(err).__name__}: {err}"
        content, truncated = limit_text(text, p.tool.max_result_chars)
        return ToolResult(
            p.call.id, p.call.name, dict(p.call.arguments), content, status, time.monotonic() - started, truncated
        )
