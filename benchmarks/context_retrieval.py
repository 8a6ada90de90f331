"""Recall@k of BM25, dense (all-MiniLM-L6-v2) and hybrid (RRF) retrieval on the QA set over llmkit's docs.

    python benchmarks/context_retrieval.py [--size 200] [--overlap 40] [--rerank]

Corpus: docs/*.md chunked markdown-aware (token windows of the MiniLM tokenizer with overlap).
Questions: llmkit/context/retrieval/data/llmkit_docs_qa.jsonl (42 hand-written questions, each
answered by the chunk of one doc that contains a given passage). `--rerank` adds the hybrid list
reranked by the default model's log-likelihood of the question given the chunk.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmkit.context.retrieval import (
    BM25Retriever,
    DenseRetriever,
    HybridRetriever,
    LoglikelihoodReranker,
    load_corpus,
    load_docs_qa,
    recall_at_k,
)
from llmkit.context.retrieval.minilm import MiniLMEmbedder

DOCS = Path(__file__).resolve().parents[1] / "docs"
KS = (1, 3, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=40)
    parser.add_argument("--rerank", action="store_true")
    args = parser.parse_args()
    embedder = MiniLMEmbedder()
    chunks = load_corpus(DOCS, embedder.count_tokens, args.size, args.overlap)
    items = load_docs_qa()
    bm25, dense = BM25Retriever(chunks), DenseRetriever(chunks, embedder)
    retrievers = [bm25, dense, HybridRetriever([bm25, dense])]
    if args.rerank:
        from llmkit.core.backends import open_backend

        retrievers.append(LoglikelihoodReranker(retrievers[-1], open_backend("reference"), depth=10))
    table = Table(
        "retriever", *[f"recall@{k}" for k in KS], "mean", title=f"{len(chunks)} chunks, {len(items)} questions"
    )
    for retriever in retrievers:
        report = recall_at_k(retriever, items, KS, progress=True)
        values = [report.recall[k] for k in KS]
        table.add_row(retriever.name, *[f"{v:.3f}" for v in values], f"{sum(values) / len(values):.3f}")
        if report.unanswerable:
            print(f"{retriever.name}: no chunk holds the answer of {report.unanswerable}")
    Console().print(table)


if __name__ == "__main__":
    main()
