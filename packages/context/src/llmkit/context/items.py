"""What a context window holds: items (messages, tool results, documents, chunks) with provenance."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from .errors import ContextError

ROLES = ("user", "assistant", "tool", "system")
KINDS = ("message", "tool_result", "document", "chunk", "correction", "reminder", "image", "page")
_ids = itertools.count()


def new_item_id(prefix: str = "item") -> str:
    return f"{prefix}-{next(_ids)}"


@dataclasses.dataclass
class ContextItem:
    """One piece of content. `turn` is the exchange it belongs to (a user message opens a new turn).

    `trusted=False` content (tool output, retrieved or fetched text) is rendered delimited as data;
    `pinned` items are never cut for budget (a pinned item that cannot fit is a `BudgetError`).
    """

    content: str
    kind: str = "message"
    role: str = "user"
    source: str | None = None
    trusted: bool = True
    pinned: bool = False
    priority: int = 0
    turn: int = 0
    item_id: str = dataclasses.field(default_factory=new_item_id)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.content, str):
            raise ContextError(f"item content must be a string, not {type(self.content).__name__}")
        if self.role not in ROLES:
            raise ContextError(f"role {self.role!r} is not one of {', '.join(ROLES)}")
        if self.kind not in KINDS:
            raise ContextError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContextItem:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ContextError(f"unknown item fields {unknown}; expected some of {sorted(known)}")
        if "content" not in data:
            raise ContextError(f"item {data!r} has no content")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class RetrievedChunk:
    """A retrieved passage with its source label and retrieval score, in rank order when handed to a window."""

    text: str
    source: str
    score: float = 0.0
    trusted: bool = False
