"""Dedup: exact (normalized hash), near (MinHash + LSH) and semantic (embeddings) duplicates."""

from .features import DedupConfig
from .minhash import MinHasher, estimated_jaccard, exact_jaccard
from .run import Deduplicator, DedupSummary, DroppedRecord, deduplicate_file, deduplicate_records

__all__ = [
    "DedupConfig",
    "DedupSummary",
    "Deduplicator",
    "DroppedRecord",
    "MinHasher",
    "deduplicate_file",
    "deduplicate_records",
    "estimated_jaccard",
    "exact_jaccard",
]
