"""Locality-sensitive hashing over MinHash bands, in compact arrays so a million documents fit in memory.

Each band of `rows` signature values becomes one uint64 key. Keys of kept documents live in per-band
sorted numpy arrays (16 bytes a key with its row) plus a dict of recent inserts merged in between batches,
so lookups for a whole batch are one `searchsorted` per band.
"""

from __future__ import annotations

import functools

import numpy as np

from ..text import fmix64


def _area(values: np.ndarray, s: np.ndarray) -> float:
    return float(((values[1:] + values[:-1]) * np.diff(s)).sum() / 2)


def _false_positive_area(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(0.0, threshold, 201)
    return _area(1 - (1 - s**rows) ** bands, s)


def _false_negative_area(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(threshold, 1.0, 201)
    return _area((1 - s**rows) ** bands, s)


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, false_negative_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false-positive and false-negative areas around `threshold`.

    datasketch's rule with its weights as a parameter; the banding of estimate-only dedup. A false
    positive of the banding costs one signature comparison while a false negative loses a duplicate:
    the default weight favours recall (at 128 permutations and 0.7: 20 bands of 6 rows).
    """
    best, choice = float("inf"), (1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = (1 - false_negative_weight) * _false_positive_area(
                threshold, bands, rows
            ) + false_negative_weight * _false_negative_area(threshold, bands, rows)
            if error < best:
                best, choice = error, (bands, rows)
    return choice


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """The probability that two documents of Jaccard `similarity` share at least one band."""
    return 1 - (1 - similarity**rows) ** bands


@functools.lru_cache(maxsize=64)
def recall_bands(threshold: float, num_perm: int, at_threshold: float = 0.995) -> tuple[int, int]:
    """The banding of exact verification: the most rows a band (fewest candidates below the threshold)
    that still makes a pair at `threshold` a candidate with probability `at_threshold`.

    Every candidate is then checked against exact Jaccard, so extra candidates cost time, never
    precision (128 permutations: 0.8 -> 21 bands of 6 rows, 0.7 -> 32 of 4).
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= at_threshold:
            return bands, rows
    return num_perm, 1


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """[n, bands] uint64 keys: each band's `rows` values folded into one mixed 64-bit hash."""
    n = signatures.shape[0]
    grouped = signatures[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    powers = np.array([pow(0x100000001B3, rows - 1 - i, 1 << 64) for i in range(rows)], dtype=np.uint64)
    with np.errstate(over="ignore"):
        return fmix64((grouped * powers).sum(axis=2, dtype=np.uint64))


class BandIndex:
    """Band key -> the first kept document (its row in the signature store) that had it, per band."""

    def __init__(self, bands: int, merge_every: int = 1 << 16):
        self.bands = bands
        self.merge_every = merge_every
        self._keys = [np.empty(0, dtype=np.uint64) for _ in range(bands)]
        self._rows = [np.empty(0, dtype=np.int64) for _ in range(bands)]
        self._recent: list[dict[int, int]] = [{} for _ in range(bands)]

    def lookup_merged(self, keys: np.ndarray) -> np.ndarray:
        """[n, bands] rows of kept documents sharing each band key in the merged arrays (-1: none)."""
        found = np.full(keys.shape, -1, dtype=np.int64)
        for band in range(self.bands):
            merged = self._keys[band]
            if not len(merged):
                continue
            position = np.minimum(np.searchsorted(merged, keys[:, band]), len(merged) - 1)
            hit = merged[position] == keys[:, band]
            found[hit, band] = self._rows[band][position[hit]]
        return found

    def lookup_recent(self, keys: np.ndarray) -> list[int]:
        """Rows sharing a band key of one document among the not yet merged inserts."""
        return [row for band, key in enumerate(keys.tolist()) if (row := self._recent[band].get(key)) is not None]

    def insert(self, keys: np.ndarray, row: int) -> None:
        for band, key in enumerate(keys.tolist()):
            self._recent[band].setdefault(key, row)

    def merge_if_due(self) -> None:
        """Merge once `merge_every` recent inserts have piled up; call between batches only.

        A batch's `lookup_merged` is taken once, before its records are decided: merging in the middle
        of a batch would move rows out of `_recent` where the rest of that batch could no longer see them.
        """
        if len(self._recent[0]) >= self.merge_every:
            self.merge()

    def merge(self) -> None:
        """Fold recent inserts into the sorted arrays; a key already present keeps its first document."""
        for band in range(self.bands):
            recent = self._recent[band]
            if not recent:
                continue
            new_keys = np.fromiter(recent.keys(), dtype=np.uint64, count=len(recent))
            new_rows = np.fromiter(recent.values(), dtype=np.int64, count=len(recent))
            merged = self._keys[band]
            if len(merged):
                position = np.minimum(np.searchsorted(merged, new_keys), len(merged) - 1)
                fresh = merged[position] != new_keys
                new_keys, new_rows = new_keys[fresh], new_rows[fresh]
            keys = np.concatenate([merged, new_keys])
            order = np.argsort(keys, kind="stable")
            self._keys[band] = keys[order]
            self._rows[band] = np.concatenate([self._rows[band], new_rows])[order]
            recent.clear()

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + r.nbytes for k, r in zip(self._keys, self._rows, strict=True))


class RowStore:
    """Append-only rows of a fixed width (signatures, embeddings) in fixed-size chunks: no regrowth copies."""

    def __init__(self, width: int, dtype: np.dtype, chunk_rows: int = 1 << 16):
        self.width, self.dtype, self.chunk_rows = width, np.dtype(dtype), chunk_rows
        self._chunks: list[np.ndarray] = []
        self.count = 0

    def append(self, row: np.ndarray) -> int:
        index = self.count
        offset = index % self.chunk_rows
        if offset == 0:
            self._chunks.append(np.empty((self.chunk_rows, self.width), dtype=self.dtype))
        self._chunks[-1][offset] = row
        self.count += 1
        return index

    def rows(self, indices: np.ndarray | list[int]) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), self.width), dtype=self.dtype)
        for i, index in enumerate(indices.tolist()):
            out[i] = self._chunks[index // self.chunk_rows][index % self.chunk_rows]
        return out

    def chunks(self) -> list[np.ndarray]:
        """The filled part of every chunk, in row order (views, no copies)."""
        if not self._chunks:
            return []
        last = self.count - (len(self._chunks) - 1) * self.chunk_rows
        return [*self._chunks[:-1], self._chunks[-1][:last]]
