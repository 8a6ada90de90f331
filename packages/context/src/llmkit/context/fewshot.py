"""Few-shot example selection: by similarity to the query (BM25 or dense embeddings, MiniLM by default),
with diversity (maximal marginal relevance), label balance and a budget in tokens; then an ordering.

Reproducible: the same pool, query, settings and seed give the same examples in the same order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from llmkit.core.embeddings import Embedder

from .errors import ContextError
from .retrieval.bm25 import BM25Retriever
from .retrieval.chunking import Chunk
from .retrieval.dense import HashingEmbedder, default_embedder

Method = Literal["bm25", "dense", "random", "first"]
Order = Literal["most_similar_last", "most_similar_first", "random"]


@dataclasses.dataclass(frozen=True)
class Example:
    input: str
    output: str
    label: str | None = None  # for label balance (a class, a task kind); defaults to `output` when balancing

    def render(self, template: str) -> str:
        return template.format(input=self.input, output=self.output)


@dataclasses.dataclass(frozen=True)
class FewShotSettings:
    k: int = 4
    method: Method = "bm25"
    mmr_lambda: float | None = None  # diversity: None = by relevance only; 1.0 = relevance, 0.0 = diversity only
    balance_labels: bool = False  # at most ceil(k / labels) examples per label
    token_budget: int | None = None  # total tokens of the rendered examples
    order: Order = "most_similar_last"  # the most relevant example next to the query by default
    template: str = "{input}\n{output}"  # how one example is rendered (and counted against the budget)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ContextError(f"k must be >= 0, got {self.k}")
        if self.mmr_lambda is not None and not 0.0 <= self.mmr_lambda <= 1.0:
            raise ContextError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.token_budget is not None and self.token_budget < 0:
            raise ContextError(f"token_budget must be >= 0, got {self.token_budget}")


def _seeded(seed: int, query: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\0{query}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


class FewShotSelector:
    """Picks `k` examples from a fixed pool for each query. `embedder` serves the dense method and the
    diversity term (MiniLM by default for dense; a lexical hashing embedder for MMR under BM25)."""

    def __init__(
        self,
        pool: Sequence[Example],
        settings: FewShotSettings = FewShotSettings(),
        *,
        embedder: Embedder | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ):
        self.pool, self.settings = list(pool), settings
        if settings.token_budget is not None and count_tokens is None:
            raise ContextError("a token budget needs count_tokens (e.g. a backend's or a tokenizer's)")
        self.count_tokens = count_tokens
        if settings.method == "dense" and embedder is None:
            embedder = default_embedder()
        if settings.mmr_lambda is not None and embedder is None:
            embedder = HashingEmbedder()
        self.embedder = embedder
        self.vectors = embedder.embed([e.input for e in self.pool]) if embedder is not None and self.pool else None
        self.bm25 = None
        if settings.method == "bm25":
            self.bm25 = BM25Retriever([Chunk(e.input, "pool", i) for i, e in enumerate(self.pool)])

    def relevance(self, query: str) -> np.ndarray:
        """A score per pool example, higher = more relevant (random and first: a seeded or fixed order)."""
        n, method = len(self.pool), self.settings.method
        if method == "first":
            return -np.arange(n, dtype=np.float64)
        if method == "random":
            return _seeded(self.settings.seed, query).random(n)
        if method == "bm25":
            scores = np.zeros(n)
            for index, score in self.bm25.search(query, k=n):
                scores[index] = score
            return scores
        return self.vectors @ self.embedder.embed([query])[0]

    def select(self, query: str, exclude: Sequence[int] = ()) -> list[Example]:
        return [self.pool[i] for i in self.select_indices(query, exclude)]

    def select_indices(self, query: str, exclude: Sequence[int] = ()) -> list[int]:
        """Pool indices of the chosen examples, in prompt order. `exclude`: indices never chosen (the query itself)."""
        settings = self.settings
        relevance = self.relevance(query).astype(np.float64)
        tiebreak = _seeded(settings.seed + 1, query).random(len(self.pool)) * 1e-9  # equal scores: seeded order
        relevance = relevance + tiebreak if settings.method != "first" else relevance
        excluded = set(exclude)
        candidates = [i for i in np.argsort(-relevance, kind="stable").tolist() if i not in excluded]
        labels = [e.label if e.label is not None else e.output for e in self.pool]
        quota = (
            math.ceil(settings.k / max(1, len({labels[i] for i in candidates}))) if settings.balance_labels else None
        )
        spent, chosen, per_label = 0, [], {}
        while candidates and len(chosen) < settings.k:
            index = self._next(candidates, chosen, relevance)
            candidates.remove(index)
            if quota is not None and per_label.get(labels[index], 0) >= quota:
                continue
            if settings.token_budget is not None:
                cost = self.count_tokens(self.pool[index].render(settings.template))
                if spent + cost > settings.token_budget:
                    continue
                spent += cost
            chosen.append(index)
            per_label[labels[index]] = per_label.get(labels[index], 0) + 1
        return self._ordered(chosen, query)

    def _next(self, candidates: list[int], chosen: list[int], relevance: np.ndarray) -> int:
        """The most relevant candidate, or with MMR: argmax lambda * relevance - (1 - lambda) * max similarity
        to what is already chosen (relevance scaled to [0, 1] first, so the two terms compare)."""
        lam = self.settings.mmr_lambda
        if lam is None or not chosen:
            return candidates[0]
        span = relevance.max() - relevance.min()
        scaled = (relevance - relevance.min()) / (span if span > 0 else 1.0)
        redundancy = (self.vectors[candidates] @ self.vectors[chosen].T).max(axis=1)
        scores = lam * scaled[candidates] - (1 - lam) * redundancy
        return candidates[int(np.argmax(scores))]

    def _ordered(self, chosen: list[int], query: str) -> list[int]:
        order = self.settings.order
        if order == "most_similar_last":
            return chosen[::-1]
        if order == "random":
            return [chosen[i] for i in _seeded(self.settings.seed + 2, query).permutation(len(chosen))]
        return list(chosen)  # most_similar_first: the order they were chosen in

    def render(self, query: str, exclude: Sequence[int] = (), separator: str = "\n\n") -> str:
        """The chosen examples rendered with the template, joined by `separator`."""
        return separator.join(e.render(self.settings.template) for e in self.select(query, exclude))
