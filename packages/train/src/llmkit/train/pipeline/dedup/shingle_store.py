"""The kept records' shingle sets, for exact verification of LSH candidates.

Sets have different sizes, so they are packed end to end into large uint32 chunks (no per-record numpy
object: 4 bytes a shingle plus 12 bytes of location a record); a set larger than a chunk gets its own.
"""

from __future__ import annotations

import numpy as np

from .lsh import RowStore


class ShingleStore:
    """Append-only store of sorted uint32 shingle sets; `get(row)` returns row `row`'s set (a view)."""

    def __init__(self, chunk_values: int = 1 << 20):
        self.chunk_values = chunk_values
        self._chunks: list[np.ndarray] = []
        self._used = 0  # values filled in the last chunk
        self._locations = RowStore(3, np.uint32)  # (chunk, start, length) per row

    @property
    def count(self) -> int:
        return self._locations.count

    def append(self, shingles: np.ndarray) -> int:
        length = len(shingles)
        if not self._chunks or self._used + length > len(self._chunks[-1]):
            self._chunks.append(np.empty(max(self.chunk_values, length), dtype=np.uint32))
            self._used = 0
        chunk = self._chunks[-1]
        chunk[self._used : self._used + length] = shingles
        row = self._locations.append(np.array([len(self._chunks) - 1, self._used, length], dtype=np.uint32))
        self._used += length
        return row

    def get(self, row: int) -> np.ndarray:
        chunk, start, length = self._locations.rows([row])[0].tolist()
        return self._chunks[chunk][start : start + length]

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks) + sum(c.nbytes for c in self._locations.chunks())
