"""The GPT-3 overlap test: which eval items share a 13-gram with the training data.

Texts are lowercased with punctuation removed and split on whitespace; an item shorter than 13 words
counts as one n-gram of all its words (Brown et al. 2020, appendix C). Eval n-grams are kept as a
sorted uint64 array (8 bytes each), looked up with one `searchsorted` per training batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..text import ngram_hashes, words
from .sources import EvalItem


class EvalNgramIndex:
    """Sorted (n-gram hash, item) pairs of the eval items, and each item's count of distinct n-grams."""

    def __init__(self, items: Sequence[EvalItem], n: int = 13):
        self.n = n
        tokenized = [words(item.text) for item in items]
        # Items shorter than n are matched whole: training texts are cut into grams of those lengths too.
        self.lengths = tuple(sorted({min(n, len(t)) for t in tokenized if t} | {n}))
        per_item = [np.unique(ngram_hashes(tokens, n)) for tokens in tokenized]
        self.item_ngrams = np.array([len(h) for h in per_item], dtype=np.int64)
        keys = np.concatenate(per_item) if per_item else np.empty(0, dtype=np.uint64)
        owners = np.repeat(np.arange(len(items), dtype=np.int64), self.item_ngrams)
        order = np.argsort(keys, kind="stable")
        self.keys, self.owners = keys[order], owners[order]

    def matches(self, ngrams: np.ndarray) -> list[tuple[int, int]]:
        """(item, n-gram hash) pairs for the given n-gram hashes that some eval item has."""
        if not len(self.keys) or not len(ngrams):
            return []
        left = np.searchsorted(self.keys, ngrams, side="left")
        right = np.searchsorted(self.keys, ngrams, side="right")
        hits = np.flatnonzero(right > left)
        pairs = []
        for h in hits.tolist():
            for position in range(left[h], right[h]):
                pairs.append((int(self.owners[position]), int(ngrams[h])))
        return pairs
