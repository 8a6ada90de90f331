"""The "react" entry of core's agents registry (`llmkit_register_agents`): one ReAct run over plain Python functions
as tools, for callers that must not import llmkit-orchestrate (llmkit-eval's agent tasks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmkit.core.sampling import SamplingParams

from .limits import Limits
from .react import ReActAgent
from .tools import Tool


def run_react(
    backend: Any,
    goal: str,
    functions: Sequence[Callable[..., Any]],
    *,
    max_steps: int,
    params: SamplingParams,
    guards: Sequence[str] = (),
    tool_choice: str = "auto",
    seed: int | None = None,
) -> dict[str, Any]:
    """{"answer", "stop_reason", "steps", "tool_log"} of `goal` run by a ReAct agent with `functions` as its tools."""
    agent = ReActAgent(
        backend,
        [Tool.from_function(function) for function in functions],
        limits=Limits(max_steps=max_steps),
        params=params,
        guards=tuple(guards),
        tool_choice=tool_choice,
        seed=seed,
    )
    result = agent.run(goal)
    return {
        "answer": result.answer,
        "stop_reason": result.stop_reason,
        "steps": result.steps,
        "tool_log": result.tool_log,
    }
