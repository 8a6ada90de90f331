"""Dense retrieval: any embedder (MiniLM by default) and cosine similarity over chunk vectors."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from llmkit.core.embeddings import Embedder

from .chunking import Chunk


class HashingEmbedder:
    """Feature hashing of words and word bigrams into `dimension` buckets, L2-normalized.

    No model and no download: a lexical embedder for tests and for memory stores that only need
    near-duplicate detection. Real semantic similarity needs `MiniLMEmbedder`.
    """

    name = "hashing"

    def __init__(self, dimension: int = 512):
        self.dimension = dimension

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dimension, 1.0 if value >> 63 else -1.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                index, sign = self._bucket(feature)
                out[row, index] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def default_embedder() -> Embedder:
    """all-MiniLM-L6-v2 (weights fetched on first use)."""
    from .minilm import MiniLMEmbedder

    return MiniLMEmbedder()


class DenseRetriever:
    """Chunks embedded once (with their heading path); queries ranked by cosine similarity."""

    name = "dense"

    def __init__(self, chunks: Sequence[Chunk], embedder: Embedder | None = None):
        self.chunks = list(chunks)
        self.embedder = embedder or default_embedder()
        texts = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in self.chunks]
        self.vectors = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dimension), np.float32)

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        if not self.chunks:
            return []
        scores = self.vectors @ self.embedder.embed([query])[0]
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in top]
