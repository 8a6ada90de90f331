"""A structured state object updated in place, rendered as stable JSON (not re-derived from the history)."""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Mapping
from typing import Any

from .errors import ContextError


class StateObject:
    """Nested key-value state. `set("plan.step", 3)` updates one path; every change bumps `version`."""

    def __init__(self, data: Mapping[str, Any] | None = None):
        self._data: dict[str, Any] = {}
        self.version = 0
        self.changes: list[tuple[int, str, Any]] = []  # (version, path, new value or None for deleted)
        for key, value in (data or {}).items():
            self.set(key, value)

    def _parent(self, path: str, create: bool) -> tuple[dict[str, Any], str]:
        parts = path.split(".")
        if not path or any(not p for p in parts):
            raise ContextError(f"state path {path!r} is empty or has an empty part")
        node = self._data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None and create:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ContextError(f"state path {path!r}: {part!r} is not an object")
            node = child
        return node, parts[-1]

    def set(self, path: str, value: Any) -> None:
        try:
            json.dumps(value)
        except TypeError as err:
            raise ContextError(f"state value at {path!r} is not JSON-serializable: {err}") from None
        node, key = self._parent(path, create=True)
        if node.get(key) != value or key not in node:
            node[key] = copy.deepcopy(value)
            self.version += 1
            self.changes.append((self.version, path, value))

    def update(self, values: Mapping[str, Any]) -> None:
        for path, value in values.items():
            self.set(path, value)

    def get(self, path: str, default: Any = None) -> Any:
        try:
            node, key = self._parent(path, create=False)
        except ContextError:
            return default
        return copy.deepcopy(node.get(key, default))

    def delete(self, path: str) -> None:
        node, key = self._parent(path, create=False)
        if key not in node:
            raise ContextError(f"state has no {path!r}")
        del node[key]
        self.version += 1
        self.changes.append((self.version, path, None))

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def render(self, exclude: Collection[str] = ()) -> str:
        """Sorted-key JSON (without the top-level keys in `exclude`): equal states render byte-identically."""
        data = {k: v for k, v in self._data.items() if k not in exclude}
        return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) if data else ""

    def __bool__(self) -> bool:
        return bool(self._data)
