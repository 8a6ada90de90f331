"""Hybrid retrieval by reciprocal rank fusion, and optional reranking by the LM's log-likelihood."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from llmkit.core.backends import Backend

from ..errors import ContextError
from .chunking import Chunk


class Retriever(Protocol):
    name: str
    chunks: list[Chunk]

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]: ...


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """RRF (Cormack et al. 2009): score(d) = sum over rankings of 1 / (k + rank(d)), ranks from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, index in enumerate(ranking, start=1):
            scores[index] = scores.get(index, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class HybridRetriever:
    """Fuse several retrievers over the same chunks (BM25 + dense by default) with RRF."""

    name = "hybrid"

    def __init__(self, retrievers: Sequence[Retriever], *, depth: int = 50, rrf_k: int = 60):
        if not retrievers:
            raise ContextError("a hybrid retriever needs at least one retriever")
        self.retrievers = list(retrievers)
        self.chunks = self.retrievers[0].chunks
        if any(r.chunks is not self.chunks and r.chunks != self.chunks for r in self.retrievers):
            raise ContextError("hybrid retrievers must index the same chunks")
        self.depth, self.rrf_k = depth, rrf_k

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        rankings = [[i for i, _ in r.search(query, max(k, self.depth))] for r in self.retrievers]
        return reciprocal_rank_fusion(rankings, self.rrf_k)[:k]


class LoglikelihoodReranker:
    """Rerank a retriever's top `depth` by log P(question | chunk) under the LM, per question token."""

    def __init__(self, retriever: Retriever, backend: Backend, *, depth: int = 10):
        self.retriever, self.backend, self.depth = retriever, backend, depth
        self.chunks = retriever.chunks
        self.name = f"{retriever.name}+rerank"

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        candidates = self.retriever.search(query, max(k, self.depth))
        requests = [(f"{self.chunks[i].text}\n\nA question this passage answers:", f" {query}") for i, _ in candidates]
        scored = self.backend.loglikelihood(requests) if requests else []
        reranked = [(i, ll.logprob / max(ll.num_tokens, 1)) for (i, _), ll in zip(candidates, scored, strict=True)]
        reranked.sort(key=lambda item: -item[1])
        return reranked[:k]
