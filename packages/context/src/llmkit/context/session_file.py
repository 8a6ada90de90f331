"""A context window as a JSON document (for `llmkit context inspect` and for saving sessions)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .compression import CodeDedup, SelectiveEviction, ToolResultLifecycle
from .compression.corrections import Correction
from .errors import ContextError
from .items import ContextItem, RetrievedChunk
from .state import StateObject
from .summary import TurnSummary
from .window import ContextWindow

POLICIES = {"tool_results": ToolResultLifecycle, "code_dedup": CodeDedup, "selective_eviction": SelectiveEviction}
_KEYS = {
    "budget", "zones", "policies", "system", "tools", "documents", "history", "retrieved", "state",
    "objective", "constraints", "reminders", "corrections", "summary", "summarized_through", "current",
}  # fmt: skip


def window_to_dict(window: ContextWindow, current: str | None = None) -> dict[str, Any]:
    return {
        "budget": window.budget,
        "zones": {name: spec.budget for name, spec in window.zones.items()},
        "policies": [dataclasses.asdict(p) for p in window.policies if getattr(p, "name", None) in POLICIES],
        "system": window.system,
        "tools": window.tools,
        "documents": [d.to_dict() for d in window.documents],
        "history": [i.to_dict() for i in window.history],
        "retrieved": [
            {"text": c.text, "source": c.source, "score": c.score, "trusted": c.trusted} for c in window.retrieved
        ],
        "state": window.state.as_dict(),
        "objective": window.objective,
        "constraints": window.constraints,
        "reminders": window.reminders,
        "corrections": [
            {"claim": c.claim, "correction": c.correction, "turn": c.turn, "item_id": c.item_id}
            for c in window.corrections
        ],
        "summary": window.summary.model_dump() if window.summary else None,
        "summarized_through": window.summarized_through,
        "current": current,
    }


def _policy(spec: str | dict[str, Any]):
    """A policy from its name, or from {"name": ..., parameters ...}."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in POLICIES:
        raise ContextError(f"unknown policy {name!r}; known: {sorted(POLICIES)}")
    try:
        return POLICIES[name](**spec)
    except (TypeError, ValueError) as err:
        raise ContextError(f"bad parameters for policy {name!r}: {err}") from None


def window_from_dict(data: dict[str, Any], counter) -> tuple[ContextWindow, str | None]:
    """The window and its pending current turn; a malformed document is a `ContextError` naming the field."""
    if not isinstance(data, dict):
        raise ContextError("a session file holds one JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ContextError(f"unknown session fields {unknown}; known: {sorted(_KEYS)}")
    policies = [_policy(spec) for spec in data.get("policies", [])]
    window = ContextWindow(counter, budget=data.get("budget"), zones=data.get("zones"), policies=policies)
    window.system = data.get("system", "")
    window.tools = list(data.get("tools", []))
    window.documents = [
        ContextItem.from_dict({"kind": "document", "role": "system", **d}) for d in data.get("documents", [])
    ]
    for raw in data.get("history", []):
        item = ContextItem.from_dict(raw)
        if "turn" not in raw:
            window.turn += item.role == "user"
            item.turn = max(window.turn, 1)
        window.turn = max(window.turn, item.turn)
        window.history.append(item)
    try:
        window.retrieved = [RetrievedChunk(**c) for c in data.get("retrieved", [])]
        window.corrections = [Correction(**c) for c in data.get("corrections", [])]
    except TypeError as err:
        raise ContextError(f"bad retrieved chunk or correction: {err}") from None
    window.state = StateObject(data.get("state") or {})
    window.objective = data.get("objective")
    window.constraints = list(data.get("constraints", []))
    window.reminders = list(data.get("reminders", []))
    if data.get("summary"):
        window.summary = TurnSummary.model_validate(data["summary"])
        window.summarized_through = int(data.get("summarized_through", 0))
    return window, data.get("current")


def load_session(path: str | Path, counter) -> tuple[ContextWindow, str | None]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ContextError(f"cannot read {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ContextError(f"{path} is not JSON: {err.msg} (line {err.lineno})") from None
    return window_from_dict(data, counter)


def save_session(window: ContextWindow, path: str | Path, current: str | None = None) -> None:
    Path(path).write_text(json.dumps(window_to_dict(window, current), indent=1, ensure_ascii=False))
