"""Installed tools: what plugins registered through `llmkit_register_tools`, built with their options."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.core.plugins import registry

from ..errors import OrchestrateError
from .tool import Tool
from .toolbox import Toolbox, ToolSet


def installed_tools() -> dict[str, Any]:
    """Registered name -> a Tool, a typed callable, or a Toolbox class (configured by options)."""
    return dict(registry("tools"))


def build_tool_set(names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None) -> ToolSet:
    """The tools registered under `names`; `options[name]` configures a Toolbox (a database, a root, limits)."""
    options = dict(options or {})
    stray = sorted(set(options) - set(names))
    if stray:
        raise OrchestrateError(f"options given for tools that were not asked for: {stray}")
    available = registry("tools")
    tools = ToolSet()
    try:
        for name in names:
            if name not in available:
                known = ", ".join(sorted(available.names())) or "none"
                raise OrchestrateError(f"no tool named {name!r} is installed (installed: {known})")
            tools.add(_build_one(name, available.get(name), dict(options.get(name, {}))))
    except Exception:
        tools.close()
        raise
    return tools


def _build_one(name: str, value: Any, options: dict[str, Any]) -> Tool | Toolbox:
    if inspect.isclass(value) and issubclass(value, Toolbox):
        return value.create(options, name)
    if options:
        raise OrchestrateError(f"tool {name!r} takes no options (got {sorted(options)})")
    if isinstance(value, Tool):
        return value
    if callable(value):
        return Tool.from_function(value, name=name)
    raise OrchestrateError(f"tool {name!r} is registered as {type(value).__name__}, not a callable or a Toolbox")


def describe_installed() -> list[dict[str, Any]]:
    """For `llmkit agent tools`: each registered entry, its owner, and the tools it provides."""
    available = registry("tools")
    rows = []
    for name, value in available:
        if inspect.isclass(value) and issubclass(value, Toolbox):
            provided = [v.name for v in vars(value).values() if isinstance(v, Tool)]
            options = [p for p in inspect.signature(value.__init__).parameters if p != "self"]
        else:
            provided, options = [name], []
        rows.append({"name": name, "owner": available.owner(name), "tools": provided, "options": options})
    return rows
