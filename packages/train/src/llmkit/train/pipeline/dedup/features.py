"""The per-batch map of dedup: parse lines, take texts, hash records, key exact duplicates, MinHash.

This is the part that runs in worker processes (or Ray tasks); the index that decides what is a
duplicate stays in the driving process and only sees these compact features.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from ..records import parse_record, record_hash, record_id, record_text
from ..text import normalize_text
from .minhash import MinHasher, ShingleSets

NEAR_VERIFICATIONS = ("exact", "estimate")


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    """Which stages run and their thresholds; recorded in the output's manifest."""

    exact: bool = True
    near: bool = True
    semantic: bool = False
    fields: tuple[str, ...] = ()  # text fields; empty: the record's known text fields
    ngram: int = 3  # word shingles for MinHash
    num_perm: int = 128
    near_threshold: float = 0.7  # Jaccard at or above which a record is a near duplicate
    # How an LSH candidate is confirmed: "exact" compares the two records' shingle sets (keeps every kept
    # record's set in memory); "estimate" trusts the MinHash signature's estimate (s.e. ~0.04 at 128).
    near_verification: str = "exact"
    semantic_threshold: float = 0.9  # cosine similarity at or above which a record is a paraphrase
    embedder: str = "minilm"
    seed: int = 1

    def __post_init__(self) -> None:
        if self.near_verification not in NEAR_VERIFICATIONS:
            raise ValueError(
                f"near_verification must be one of {', '.join(NEAR_VERIFICATIONS)}, not {self.near_verification!r}"
            )
        if not 0.0 < self.near_threshold <= 1.0:
            raise ValueError(f"near_threshold must be in (0, 1], not {self.near_threshold}")

    @property
    def exact_verification(self) -> bool:
        return self.near and self.near_verification == "exact"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "fields": list(self.fields)}


@dataclasses.dataclass
class BatchFeatures:
    """What the driver needs of one batch of records."""

    first_index: int
    lines: list[str]  # the records' own lines, written unchanged when kept
    ids: list[str]
    record_hashes: list[str]
    exact_keys: np.ndarray  # uint64 [n]: hash of the normalized text
    signatures: np.ndarray | None  # uint32 [n, num_perm]
    shingles: ShingleSets | None  # each record's shingle set, for exact verification of near candidates
    texts: list[str] | None  # kept for the semantic stage only


def exact_key(normalized: str) -> int:
    return int.from_bytes(hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest(), "little")


class Featurizer:
    """Picklable batch function: (first record index, [(location, line)]) -> `BatchFeatures`."""

    def __init__(self, config: DedupConfig):
        self.config = config
        self.hasher = MinHasher(config.num_perm, config.ngram, config.seed) if config.near else None

    def __call__(self, batch: tuple[int, list[tuple[str, str]]]) -> BatchFeatures:
        first_index, items = batch
        ids, hashes, normalized, texts = [], [], [], []
        for offset, (where, line) in enumerate(items):
            record = parse_record(line, where)
            text = record_text(record, self.config.fields or None)
            ids.append(record_id(record, first_index + offset))
            hashes.append(record_hash(record))
            normalized.append(normalize_text(text))
            texts.append(text)
        keys = np.array([exact_key(n) for n in normalized], dtype=np.uint64)
        signatures = shingles = None
        if self.hasher:
            signatures, shingles = self.hasher.signatures_and_shingles([n.split() for n in normalized])
            if not self.config.exact_verification:
                shingles = None  # not shipped back from the worker when nothing reads them
        return BatchFeatures(
            first_index,
            [line for _, line in items],
            ids,
            hashes,
            keys,
            signatures,
            shingles,
            texts if self.config.semantic else None,
        )
