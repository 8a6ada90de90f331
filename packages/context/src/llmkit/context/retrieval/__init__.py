"""Retrieval: chunking, BM25, dense embeddings, hybrid fusion, LM reranking, recall@k."""

from .bm25 import BM25Retriever
from .chunking import Chunk, chunk_code, chunk_document, chunk_markdown, chunk_text, window_pieces
from .dense import DenseRetriever, Embedder, HashingEmbedder, default_embedder
from .evaluation import QAItem, RecallReport, load_corpus, load_docs_qa, recall_at_k
from .hybrid import HybridRetriever, LoglikelihoodReranker, Retriever, reciprocal_rank_fusion

__all__ = [
    "BM25Retriever",
    "Chunk",
    "DenseRetriever",
    "Embedder",
    "HashingEmbedder",
    "HybridRetriever",
    "LoglikelihoodReranker",
    "QAItem",
    "RecallReport",
    "Retriever",
    "chunk_code",
    "chunk_document",
    "chunk_markdown",
    "chunk_text",
    "default_embedder",
    "load_corpus",
    "load_docs_qa",
    "recall_at_k",
    "reciprocal_rank_fusion",
    "window_pieces",
]
