"""Dedup end to end: exact, then near (MinHash LSH), then semantic; kept records plus a cluster report.

Every dropped record names its representative (the first kept record it duplicates), the stage that
caught it and the similarity. Representatives are always kept records, so clusters never chain.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llmkit.core.embeddings import Embedder

from ..execution import Executor, InlineExecutor
from ..progress import record_progress
from ..records import batched, iter_lines
from ..storage import atomic_writer
from ..versioning.manifest import DatasetHasher, DatasetWriter, Parent
from .features import BatchFeatures, DedupConfig, Featurizer
from .lsh import BandIndex, RowStore, band_keys, optimal_bands, recall_bands
from .minhash import estimated_jaccard, sorted_set_jaccard
from .semantic import SemanticIndex
from .shingle_store import ShingleStore

STAGES = ("exact", "near", "semantic")


@dataclasses.dataclass(frozen=True)
class DroppedRecord:
    """A duplicate: which record, of which kept representative, found by which stage, how similar."""

    index: int
    id: str
    representative: int
    representative_id: str
    stage: str
    similarity: float


@dataclasses.dataclass
class DedupSummary:
    records: int = 0
    kept: int = 0
    dropped: Counter = dataclasses.field(default_factory=Counter)  # stage -> count
    clusters: int = 0  # representatives with at least one duplicate
    largest_cluster: int = 1
    seconds: float = 0.0
    input_dataset_hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "kept": self.kept,
            "dropped": {stage: self.dropped.get(stage, 0) for stage in STAGES},
            "clusters": self.clusters,
            "largest_cluster": self.largest_cluster,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records / self.seconds, 1) if self.seconds else None,
            "input_dataset_hash": self.input_dataset_hash,
        }


class Deduplicator:
    """The index side of dedup: takes `BatchFeatures` in input order, decides kept or dropped."""

    def __init__(self, config: DedupConfig, embedder: Embedder | None = None):
        self.config = config
        self.exact_seen: dict[int, int] = {}  # exact key -> representative's index
        self.own_ids: dict[int, str] = {}  # kept index -> its `id` field, when it has one
        self.cluster_sizes: Counter = Counter()  # representative -> duplicates found
        if config.near:
            self.bands, self.rows = (recall_bands if config.exact_verification else optimal_bands)(
                config.near_threshold, config.num_perm
            )
            self.band_index = BandIndex(self.bands)
            self.signatures = RowStore(config.num_perm, np.uint32)
            self.signature_owner: list[int] = []  # signature row -> record index
            # Kept records' shingle sets, same rows as `signatures` (exact verification only).
            self.shingle_sets = ShingleStore() if config.exact_verification else None
        if config.semantic:
            if embedder is None:
                from ..embedders import open_embedder

                embedder = open_embedder(config.embedder)
            self.embedder = embedder
            self.semantic = SemanticIndex(embedder.dimension)
            self.semantic_owner: list[int] = []  # embedding row -> record index

    def _id(self, index: int) -> str:
        return self.own_ids.get(index, str(index))

    def process(self, features: BatchFeatures) -> list[DroppedRecord | None]:
        """Per record of the batch, in order: None when kept, else why it was dropped."""
        config, n, first = self.config, len(features.lines), features.first_index
        keys = features.exact_keys.tolist()
        band = band_keys(features.signatures, self.bands, self.rows) if config.near else None
        merged = self.band_index.lookup_merged(band) if config.near else None
        vectors = prior_best = prior_row = None
        fresh = [i for i in range(n) if not config.exact or keys[i] not in self.exact_seen]
        if config.semantic:
            vectors = np.zeros((n, self.embedder.dimension), dtype=np.float32)
            if fresh:
                vectors[fresh] = self.embedder.embed([features.texts[i] for i in fresh])
            prior_best, prior_row = self.semantic.nearest(vectors)
        kept_here: list[int] = []  # offsets kept so far in this batch (semantic comparison within it)
        decisions: list[DroppedRecord | None] = []
        for i in range(n):
            index = first + i
            dropped = self._exact(index, features.ids[i], keys[i]) if config.exact else None
            if dropped is None and config.near:
                shingles = features.shingles[i] if self.shingle_sets is not None else None
                dropped = self._near(index, features.ids[i], features.signatures[i], shingles, band[i], merged[i])
            if dropped is None and config.semantic:
                dropped = self._semantic(
                    index, features.ids[i], vectors, i, prior_best[i], prior_row[i], kept_here, first
                )
            if config.exact:
                self.exact_seen.setdefault(keys[i], dropped.representative if dropped else index)
            if dropped is None:
                self._keep(index, features.ids[i], features, i, band, vectors)
                kept_here.append(i)
            else:
                self.cluster_sizes[dropped.representative] += 1
            decisions.append(dropped)
        if config.near:
            self.band_index.merge_if_due()  # between batches: `merged` above must stay valid for the whole batch
        return decisions

    def _drop(self, index: int, own_id: str, representative: int, stage: str, similarity: float) -> DroppedRecord:
        return DroppedRecord(
            index, own_id, representative, self._id(representative), stage, round(float(similarity), 4)
        )

    def _exact(self, index: int, own_id: str, key: int) -> DroppedRecord | None:
        representative = self.exact_seen.get(key)
        return None if representative is None else self._drop(index, own_id, representative, "exact", 1.0)

    def _near(self, index, own_id, signature, shingles, keys, merged) -> DroppedRecord | None:
        """The most similar kept LSH candidate at or above the threshold: by exact shingle-set Jaccard when
        `shingles` is given, else by the signatures' estimate."""
        rows = set(self.band_index.lookup_recent(keys))
        if merged.max() >= 0:
            rows.update(r for r in merged.tolist() if r >= 0)
        rows = sorted(rows)
        if not rows:
            return None
        if shingles is None:
            similarity = estimated_jaccard(signature, self.signatures.rows(rows))
        else:
            similarity = np.array([sorted_set_jaccard(shingles, self.shingle_sets.get(row)) for row in rows])
        best = int(similarity.argmax())
        if similarity[best] < self.config.near_threshold:
            return None
        return self._drop(index, own_id, self.signature_owner[rows[best]], "near", similarity[best])

    def _semantic(
        self, index, own_id, vectors, offset, prior_best, prior_row, kept_here, first
    ) -> DroppedRecord | None:
        best = float(prior_best)
        representative = self.semantic_owner[prior_row] if prior_row >= 0 else -1
        if kept_here:
            scores = vectors[kept_here] @ vectors[offset]
            top = int(scores.argmax())
            if scores[top] > best:
                best, representative = float(scores[top]), first + kept_here[top]
        if representative < 0 or best < self.config.semantic_threshold:
            return None
        return self._drop(index, own_id, representative, "semantic", min(best, 1.0))

    def _keep(self, index, own_id, features, offset, band, vectors) -> None:
        if own_id != str(index):
            self.own_ids[index] = own_id
        if self.config.near:
            row = self.signatures.append(features.signatures[offset])
            self.signature_owner.append(index)
            self.band_index.insert(band[offset], row)
            if self.shingle_sets is not None:
                self.shingle_sets.append(features.shingles[offset])
        if vectors is not None:
            self.semantic.add(vectors[offset])
            self.semantic_owner.append(index)

    def run(self, features: Iterable[BatchFeatures]) -> Iterator[tuple[BatchFeatures, list[DroppedRecord | None]]]:
        """Each batch's features with its per-record decisions."""
        for batch in features:
            yield batch, self.process(batch)


def _numbered_batches(path: str | Path, batch_size: int) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    first = 0
    for batch in batched(iter_lines(path), batch_size):
        yield first, [(f"{path}:{number}", line) for number, line in batch]
        first += len(batch)


def deduplicate_file(
    source: str | Path,
    output: str | Path,
    report: str | Path,
    config: DedupConfig,
    executor: Executor | None = None,
    *,
    batch_size: int = 2048,
    embedder: Embedder | None = None,
    quiet: bool = False,
    total: int | None = None,
) -> DedupSummary:
    """Stream `source` through dedup: kept records (+ manifest) to `output`, dropped ones to `report` (JSONL)."""
    executor = executor or InlineExecutor()
    deduplicator = Deduplicator(config, embedder)
    summary, parent = DedupSummary(), DatasetHasher()
    started = time.perf_counter()
    featurize = Featurizer(config)
    with (
        DatasetWriter(output, "dedup", config.as_dict()) as writer,
        atomic_writer(report) as report_file,
        record_progress(quiet) as progress,
    ):
        task = progress.add_task("dedup", total=total, rate="")
        features = executor.map(featurize, _numbered_batches(source, batch_size))
        for batch, decisions in deduplicator.run(features):
            for offset, dropped in enumerate(decisions):
                parent.add(batch.record_hashes[offset])
                if dropped is None:
                    writer.write(batch.lines[offset], batch.record_hashes[offset])
                else:
                    summary.dropped[dropped.stage] += 1
                    report_file.write(json.dumps(dataclasses.asdict(dropped)) + "\n")
            summary.records += len(decisions)
            elapsed = time.perf_counter() - started
            progress.update(task, advance=len(decisions), rate=f"{summary.records / max(elapsed, 1e-9):,.0f} rec/s")
        summary.input_dataset_hash = parent.hexdigest()
        writer.add_parent(Parent(str(source), summary.input_dataset_hash, parent.count))
    summary.kept = summary.records - sum(summary.dropped.values())
    summary.clusters = len(deduplicator.cluster_sizes)
    summary.largest_cluster = 1 + max(deduplicator.cluster_sizes.values(), default=0)
    summary.seconds = time.perf_counter() - started
    return summary


def deduplicate_records(
    records: Iterable[Mapping[str, Any]], config: DedupConfig, embedder: Embedder | None = None, batch_size: int = 512
) -> tuple[list[Mapping[str, Any]], list[DroppedRecord]]:
    """In-memory dedup of a list of records: (kept records, dropped records with their representatives)."""
    records = list(records)
    featurize = Featurizer(config)
    batches = (
        (first, [(f"record {first + i}", json.dumps(r)) for i, r in enumerate(records[first : first + batch_size])])
        for first in range(0, len(records), batch_size)
    )
    kept, dropped_all = [], []
    for batch, decisions in Deduplicator(config, embedder).run(map(featurize, batches)):
        for offset, dropped in enumerate(decisions):
            if dropped is None:
                kept.append(records[batch.first_index + offset])
            else:
                dropped_all.append(dropped)
    return kept, dropped_all
