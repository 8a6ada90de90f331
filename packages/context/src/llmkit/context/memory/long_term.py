"""Long-term memory in SQLite: a key-value table and an embeddings table searched by cosine similarity."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ContextError
from ..retrieval.dense import Embedder

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    embedder TEXT NOT NULL,
    vector BLOB NOT NULL,
    metadata TEXT NOT NULL,
    created REAL NOT NULL
);
"""


@dataclasses.dataclass(frozen=True)
class MemoryHit:
    """A remembered text and how similar it is to the query."""

    id: int
    text: str
    score: float
    metadata: dict[str, Any]
    level: str = "long_term"


class LongTermMemory:
    """Persists across sessions. `search` returns only memories at least `min_score` similar: an
    irrelevant memory never reaches the context just because it is the nearest one."""

    def __init__(self, path: str | Path, embedder: Embedder, *, min_score: float = 0.35):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.embedder, self.min_score = embedder, min_score
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ContextError(f"{self.path} is not a usable SQLite memory store: {err}") from None

    def close(self) -> None:
        self._db.close()

    # key-value
    def put(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                "updated=excluded.updated",
                (key, json.dumps(value), time.time()),
            )

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def delete(self, key: str) -> bool:
        with self._db:
            return self._db.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount > 0

    def keys(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT key FROM kv ORDER BY key")]

    # embeddings
    def add(self, text: str, metadata: Mapping[str, Any] | None = None) -> int:
        vector = self.embedder.embed([text])[0].astype(np.float32)
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO memories (text, embedder, vector, metadata, created) VALUES (?, ?, ?, ?, ?)",
                (text, self.embedder.name, vector.tobytes(), json.dumps(dict(metadata or {})), time.time()),
            )
        return int(cursor.lastrowid)

    def forget(self, memory_id: int) -> bool:
        with self._db:
            return self._db.execute("DELETE FROM memories WHERE id = ?", (memory_id,)).rowcount > 0

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM memories").fetchone()[0])

    def search(self, query: str, k: int = 5, min_score: float | None = None) -> list[MemoryHit]:
        """The `k` most similar memories whose cosine similarity is at least `min_score`."""
        threshold = self.min_score if min_score is None else min_score
        rows = self._db.execute(
            "SELECT id, text, vector, metadata FROM memories WHERE embedder = ?", (self.embedder.name,)
        ).fetchall()
        if not rows:
            return []
        vectors = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        if vectors.shape[1] != self.embedder.dimension:
            raise ContextError(
                f"{self.path} holds {vectors.shape[1]}-d vectors; the embedder makes {self.embedder.dimension}-d"
            )
        scores = vectors @ self.embedder.embed([query])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            MemoryHit(rows[i][0], rows[i][1], float(scores[i]), json.loads(rows[i][3]))
            for i in order
            if scores[i] >= threshold
        ]
