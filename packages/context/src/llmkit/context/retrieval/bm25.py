"""Sparse retrieval: BM25 over chunks (bm25s)."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s

from .chunking import Chunk


def _index_text(chunk: Chunk) -> str:
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


class BM25Retriever:
    """Okapi BM25 (bm25s, English stopwords removed) over chunk text plus its heading path."""

    name = "bm25"

    def __init__(self, chunks: Sequence[Chunk], *, k1: float = 1.5, b: float = 0.75):
        self.chunks = list(chunks)
        self._index = bm25s.BM25(k1=k1, b=b)
        if self.chunks:
            tokens = bm25s.tokenize([_index_text(c) for c in self.chunks], stopwords="en", show_progress=False)
            self._index.index(tokens, show_progress=False)

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """(chunk index, score) best first; chunks sharing no term with the query are left out."""
        if not self.chunks:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)
        if not tokens[0]:
            return []
        documents, scores = self._index.retrieve(tokens, k=min(k, len(self.chunks)), show_progress=False)
        return [(int(d), float(s)) for d, s in zip(documents[0], scores[0], strict=True) if s > 0]
