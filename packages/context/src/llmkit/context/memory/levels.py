"""Memory levels: working (the context window itself), session (this conversation), long-term (SQLite)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..items import RetrievedChunk
from ..retrieval.dense import Embedder
from .long_term import LongTermMemory, MemoryHit


@dataclasses.dataclass
class SessionMemory:
    """Notes kept for the length of one session (facts learned, results worth keeping) outside the window."""

    embedder: Embedder
    min_score: float = 0.35
    notes: list[str] = dataclasses.field(default_factory=list)
    _vectors: list[np.ndarray] = dataclasses.field(default_factory=list)

    def remember(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self._vectors.append(self.embedder.embed([text])[0])

    def search(self, query: str, k: int = 5) -> list[MemoryHit]:
        if not self.notes:
            return []
        scores = np.stack(self._vectors) @ self.embedder.embed([query])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            MemoryHit(int(i), self.notes[i], float(scores[i]), {}, "session")
            for i in order
            if scores[i] >= self.min_score
        ]


class Memory:
    """Session and long-term memory behind one `relevant(query)`: what to inject into the retrieved zone."""

    def __init__(self, session: SessionMemory, long_term: LongTermMemory | None = None):
        self.session, self.long_term = session, long_term

    def relevant(self, query: str, k: int = 5) -> list[MemoryHit]:
        """Hits from both levels above their thresholds, best first (nothing when nothing is relevant)."""
        hits: list[MemoryHit] = list(self.session.search(query, k))
        if self.long_term is not None:
            hits += self.long_term.search(query, k)
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def as_chunks(self, hits: Sequence[MemoryHit]) -> list[RetrievedChunk]:
        """Hits as retrieved chunks labeled with their memory level, for `ContextWindow.set_retrieved`."""
        return [RetrievedChunk(h.text, f"memory:{h.level}#{h.id}", h.score, trusted=False) for h in hits]
