"""Semantic duplicates: each new record's embedding against every kept one, in blocked matrix products.

Exact nearest-kept search is O(kept) per record; it is the slow stage and runs after exact and near
dedup have removed what they can. Kept embeddings are stored as float16 (half the memory).
"""

from __future__ import annotations

import numpy as np

from .lsh import RowStore


class SemanticIndex:
    """Kept embeddings; `nearest(batch)` gives each row's most similar kept row and its cosine."""

    def __init__(self, dimension: int, block_rows: int = 1 << 16):
        self.store = RowStore(dimension, np.float16, block_rows)

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best similarity, best kept row) per row of `vectors`; (-inf, -1) while nothing is kept."""
        best = np.full(len(vectors), -np.inf, dtype=np.float32)
        where = np.full(len(vectors), -1, dtype=np.int64)
        offset = 0
        for block in self.store.chunks():
            scores = vectors @ block.astype(np.float32).T
            arg = scores.argmax(axis=1)
            top = scores[np.arange(len(vectors)), arg]
            better = top > best
            best[better], where[better] = top[better], arg[better] + offset
            offset += len(block)
        return best, where

    def add(self, vector: np.ndarray) -> int:
        return self.store.append(vector.astype(np.float16))
