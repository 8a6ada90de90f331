"""Text normalization and stable n-gram hashes, vectorized with numpy so millions of records stay cheap.

A word's hash is blake2b (64 bits, cached); an n-gram's hash is a polynomial over its words' hashes,
mixed by the MurmurHash3 finalizer. Both are stable across processes and machines (no `hash()` salt).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_NOT_WORD = re.compile(r"[^\w\s]", re.UNICODE)
_MASK64 = (1 << 64) - 1
NGRAM_MULTIPLIER = 0x9E3779B97F4A7C15  # odd: the polynomial stays a bijection in each word's hash


def normalize_text(text: str) -> str:
    """NFKC, case-folded, punctuation removed, whitespace collapsed (the GPT-3 contamination normalization)."""
    text = _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def words(text: str) -> list[str]:
    return normalize_text(text).split()


@functools.lru_cache(maxsize=1 << 20)
def word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, elementwise on uint64 (wraparound is the intended arithmetic)."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> np.uint64(33))


def _ngram_powers(n: int) -> np.ndarray:
    powers = [pow(NGRAM_MULTIPLIER, n - 1 - i, 1 << 64) for i in range(n)]
    return np.array(powers, dtype=np.uint64)


def ngram_hashes(tokens: Sequence[str], n: int) -> np.ndarray:
    """uint64 hashes of every word n-gram; a text shorter than n words is one n-gram of all its words.

    The short-text rule is GPT-3's: an item shorter than the n-gram counts as a whole.
    """
    if not tokens:
        return np.empty(0, dtype=np.uint64)
    hashes = np.fromiter((word_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))
    width = min(n, len(hashes))
    windows = np.lib.stride_tricks.sliding_window_view(hashes, width)
    with np.errstate(over="ignore"):
        combined = (windows * _ngram_powers(width)).sum(axis=1, dtype=np.uint64)
        return fmix64(combined)


def ngram_hash_reference(gram: Sequence[str]) -> int:
    """The hash `ngram_hashes` gives one n-gram, in plain Python (the specification the numpy path meets)."""
    combined = 0
    for i, token in enumerate(gram):
        combined = (combined + word_hash(token) * pow(NGRAM_MULTIPLIER, len(gram) - 1 - i, 1 << 64)) & _MASK64
    for shift, multiplier in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
        combined = ((combined ^ (combined >> shift)) * multiplier) & _MASK64
    return combined ^ (combined >> 33)


def batch_ngram_hashes(documents: Sequence[Sequence[str]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, document of each) for every word n-gram of many documents at once, equal to `ngram_hashes`.

    One numpy pass over the concatenated word hashes: windows that cross a document boundary are
    dropped; documents shorter than n words fall back to `ngram_hashes` (one whole-text n-gram).
    """
    lengths = np.fromiter((len(d) for d in documents), dtype=np.int64, count=len(documents))
    total = int(lengths.sum())
    flat = np.fromiter(map(word_hash, itertools.chain.from_iterable(documents)), dtype=np.uint64, count=total)
    owner = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
    parts_hash, parts_owner = [], []
    if total >= n:
        windows = total - n + 1
        combined = np.zeros(windows, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i, power in enumerate(_ngram_powers(n)):
                combined += flat[i : i + windows] * power
            valid = owner[:windows] == owner[n - 1 :]
            parts_hash.append(fmix64(combined[valid]))
        parts_owner.append(owner[:windows][valid])
    for document in np.flatnonzero((lengths > 0) & (lengths < n)).tolist():
        parts_hash.append(ngram_hashes(documents[document], n))
        parts_owner.append(np.full(1, document, dtype=np.int64))
    if not parts_hash:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    return np.concatenate(parts_hash), np.concatenate(parts_owner)
