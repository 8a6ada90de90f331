"""MinHash signatures, vectorized over a batch of documents.

The permutation scheme is datasketch's `affine32` (2.x): each 32-bit shingle hash is pre-mixed by the
MurmurHash3 finalizer, then permuted as a*h + b mod 2^32 with odd a drawn from `RandomState(seed)`.
Signatures therefore equal `datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash32)` (tested).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..text import batch_ngram_hashes, ngram_hash_reference, ngram_hashes

EMPTY = np.uint32(0xFFFFFFFF)  # the signature value of a document with no shingles


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 vectors of the affine permutations, as datasketch draws them."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def shingle_hash32(shingle: Sequence[str]) -> int:
    """The 32-bit hash of one word shingle (low half of its n-gram hash); datasketch's `hashfunc` in tests."""
    return ngram_hash_reference(shingle) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class ShingleSets:
    """Distinct 32-bit shingle hashes of a batch of documents: document i's sorted set is
    `values[offsets[i]:offsets[i + 1]]` (one flat array: compact to pickle from a worker)."""

    values: np.ndarray  # uint32
    offsets: np.ndarray  # int64 [documents + 1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]


class MinHasher:
    """Signatures of word n-gram shingle sets: `num_perm` uint32 minima per document."""

    def __init__(self, num_perm: int = 128, ngram: int = 3, seed: int = 1, chunk_rows: int = 8192):
        self.num_perm, self.ngram, self.seed = num_perm, ngram, seed
        self.a, self.b = permutations(num_perm, seed)
        self.chunk_rows = chunk_rows  # shingles permuted at once: bounds the [rows, num_perm] temporary

    def shingles(self, tokens: Sequence[str]) -> np.ndarray:
        """Distinct 32-bit shingle hashes of one document's normalized words."""
        return np.unique((ngram_hashes(tokens, self.ngram) & np.uint64(0xFFFFFFFF)).astype(np.uint32))

    def signatures(self, documents: Sequence[Sequence[str]]) -> np.ndarray:
        """[len(documents), num_perm] uint32 signatures of tokenized documents (the batch in one numpy pass)."""
        return self.signatures_and_shingles(documents)[0]

    def signatures_and_shingles(self, documents: Sequence[Sequence[str]]) -> tuple[np.ndarray, ShingleSets]:
        """Signatures plus each document's distinct 32-bit shingle hashes (the sets the signatures estimate)."""
        out = np.full((len(documents), self.num_perm), EMPTY, dtype=np.uint32)
        hashes, owners = batch_ngram_hashes(documents, self.ngram)
        if not len(hashes):
            return out, ShingleSets(np.empty(0, dtype=np.uint32), np.zeros(len(documents) + 1, dtype=np.int64))
        # Distinct (document, 32-bit shingle) pairs, sorted by document: one unique over packed keys.
        packed = np.unique((owners.astype(np.uint64) << np.uint64(32)) | (hashes & np.uint64(0xFFFFFFFF)))
        owners = (packed >> np.uint64(32)).astype(np.int64)
        shingles = (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        offsets = np.searchsorted(owners, np.arange(len(documents) + 1), side="left").astype(np.int64)
        flat = fmix32(shingles)
        documents_present, starts = np.unique(owners, return_index=True)
        # Permute in row chunks that end on document boundaries, min-reducing per document.
        first = 0
        while first < len(starts):
            last = max(int(np.searchsorted(starts, starts[first] + self.chunk_rows, side="right")), first + 1)
            begin, end = starts[first], starts[last] if last < len(starts) else len(flat)
            with np.errstate(over="ignore"):
                permuted = flat[begin:end, None] * self.a[None, :] + self.b[None, :]
            out[documents_present[first:last]] = np.minimum.reduceat(permuted, starts[first:last] - begin, axis=0)
            first = last
        return out, ShingleSets(shingles, offsets)


def estimated_jaccard(signature: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The fraction of equal positions: the MinHash estimate of Jaccard similarity (one vs many)."""
    return (others == signature[None, :]).mean(axis=1)


def sorted_set_jaccard(first: np.ndarray, second: np.ndarray) -> float:
    """Exact Jaccard of two sorted arrays of distinct values (two shingle sets)."""
    union = len(first) + len(second)
    if not union:
        return 1.0
    common = len(np.intersect1d(first, second, assume_unique=True))
    return common / (union - common)


def exact_jaccard(first: set, second: set) -> float:
    union = len(first | second)
    return len(first & second) / union if union else 1.0
