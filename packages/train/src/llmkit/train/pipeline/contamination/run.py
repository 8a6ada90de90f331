"""Contamination: each eval item's 13-gram overlap with a training set and its nearest training record.

The training set streams through once (n-grams computed in workers); eval items are few and stay in
memory. The report has one row per eval item, clean ones included, and a summary per source.
Optionally the training records that touch any eval item are left out of a decontaminated copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmkit.core.embeddings import Embedder

from ..execution import Executor, InlineExecutor
from ..progress import record_progress
from ..records import batched, iter_lines, parse_record, record_hash, record_id, record_text
from ..storage import atomic_writer
from ..text import ngram_hashes, words
from ..versioning.manifest import DatasetHasher, DatasetWriter, Parent
from .ngram_index import EvalNgramIndex
from .sources import EvalItem


@dataclasses.dataclass(frozen=True)
class ContaminationConfig:
    ngram: int = 13
    semantic: bool = False
    semantic_threshold: float = 0.85  # cosine at or above which an eval item has a near-match
    embedder: str = "minilm"
    fields: tuple[str, ...] = ()  # training text fields; empty: the known ones
    max_examples: int = 5  # training records listed per contaminated item

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "fields": list(self.fields)}


@dataclasses.dataclass
class TrainingBatch:
    first_index: int
    lines: list[str]
    ids: list[str]
    record_hashes: list[str]
    ngrams: list[np.ndarray]  # distinct n-gram hashes per record
    texts: list[str] | None


class TrainingNgrams:
    """Picklable batch function: (first index, [(location, line)]) -> `TrainingBatch`.

    `lengths` are the gram sizes to cut: n, plus the length of every eval item shorter than n.
    """

    def __init__(self, config: ContaminationConfig, lengths: Sequence[int]):
        self.config, self.lengths = config, tuple(lengths)

    def _ngrams(self, text: str) -> np.ndarray:
        tokens = words(text)
        grams = [ngram_hashes(tokens, n) for n in self.lengths if n <= max(len(tokens), 1)]
        return np.unique(np.concatenate(grams)) if grams else np.empty(0, dtype=np.uint64)

    def __call__(self, batch: tuple[int, list[tuple[str, str]]]) -> TrainingBatch:
        first, items = batch
        ids, hashes, ngrams, texts = [], [], [], []
        for offset, (where, line) in enumerate(items):
            record = parse_record(line, where)
            text = record_text(record, self.config.fields or None)
            ids.append(record_id(record, first + offset))
            hashes.append(record_hash(record))
            ngrams.append(self._ngrams(text))
            texts.append(text)
        return TrainingBatch(
            first, [line for _, line in items], ids, hashes, ngrams, texts if self.config.semantic else None
        )


@dataclasses.dataclass
class ItemFinding:
    item: EvalItem
    ngrams: int
    matched: set = dataclasses.field(default_factory=set)  # eval n-gram hashes seen in training
    training_matches: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)
    semantic_similarity: float | None = None
    semantic_match: str | None = None

    def row(self, config: ContaminationConfig) -> dict[str, Any]:
        by = ["ngram"] if self.matched else []
        if self.semantic_similarity is not None and self.semantic_similarity >= config.semantic_threshold:
            by.append("semantic")
        return {
            "source": self.item.source,
            "id": self.item.id,
            "contaminated": bool(by),
            "contaminated_by": by,
            "ngrams": self.ngrams,
            "matched_ngrams": len(self.matched),
            "overlap": round(len(self.matched) / self.ngrams, 4) if self.ngrams else 0.0,
            "training_matches": self.training_matches,
            "training_examples": self.examples,
            "semantic_similarity": None if self.semantic_similarity is None else round(self.semantic_similarity, 4),
            "semantic_match": self.semantic_match,
        }


class ContaminationChecker:
    """Accumulates per-item findings over training batches; says which training records are contaminated."""

    def __init__(self, items: Sequence[EvalItem], config: ContaminationConfig, embedder: Embedder | None = None):
        self.config = config
        self.index = EvalNgramIndex(items, config.ngram)
        self.findings = [ItemFinding(item, int(n)) for item, n in zip(items, self.index.item_ngrams, strict=True)]
        if config.semantic:
            if embedder is None:
                from ..embedders import open_embedder

                embedder = open_embedder(config.embedder)
            self.embedder = embedder
            self.eval_vectors = embedder.embed([item.text for item in items])
            self.best = np.full(len(items), -np.inf, dtype=np.float32)

    def process(self, batch: TrainingBatch) -> list[bool]:
        """Per training record of the batch: does it touch any eval item?"""
        flagged = [False] * len(batch.ids)
        for offset, ngrams in enumerate(batch.ngrams):
            touched = set()
            for item, gram in self.index.matches(ngrams):
                self.findings[item].matched.add(gram)
                touched.add(item)
            for item in touched:
                finding = self.findings[item]
                finding.training_matches += 1
                if len(finding.examples) < self.config.max_examples:
                    finding.examples.append(batch.ids[offset])
            flagged[offset] = bool(touched)
        if self.config.semantic and batch.texts:
            scores = self.embedder.embed(batch.texts) @ self.eval_vectors.T  # [records, items]
            rows = scores.argmax(axis=0)
            top = scores[rows, np.arange(scores.shape[1])]
            better = np.flatnonzero(top > self.best)
            for item in better.tolist():
                self.best[item] = top[item]
                self.findings[item].semantic_similarity = float(top[item])
                self.findings[item].semantic_match = batch.ids[int(rows[item])]
            near = scores.max(axis=1) >= self.config.semantic_threshold
            flagged = [f or bool(n) for f, n in zip(flagged, near, strict=True)]
        return flagged

    def rows(self) -> list[dict[str, Any]]:
        return [finding.row(self.config) for finding in self.findings]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per eval source: items, contaminated by n-gram, by semantic match, by either, and the fraction."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows():
            entry = out.setdefault(row["source"], {"items": 0, "ngram": 0, "semantic": 0, "contaminated": 0})
            entry["items"] += 1
            entry["ngram"] += "ngram" in row["contaminated_by"]
            entry["semantic"] += "semantic" in row["contaminated_by"]
            entry["contaminated"] += row["contaminated"]
        for entry in out.values():
            entry["fraction"] = round(entry["contaminated"] / entry["items"], 4)
        return out


def check_contamination(
    training: str | Path,
    items: Sequence[EvalItem],
    report: str | Path,
    config: ContaminationConfig,
    executor: Executor | None = None,
    *,
    decontaminated: str | Path | None = None,
    embedder: Embedder | None = None,
    batch_size: int = 1024,
    quiet: bool = False,
) -> dict[str, Any]:
    """Stream `training` against the eval items: a per-item JSONL report; optionally a decontaminated copy."""
    executor = executor or InlineExecutor()
    checker = ContaminationChecker(items, config, embedder)
    started, records, removed, parent = time.perf_counter(), 0, 0, DatasetHasher()
    batches = (
        (first * batch_size, [(f"{training}:{number}", line) for number, line in chunk])
        for first, chunk in enumerate(batched(iter_lines(training), batch_size))
    )
    writer = DatasetWriter(decontaminated, "decontaminate", config.as_dict()) if decontaminated else None
    with record_progress(quiet) as progress, writer or contextlib.nullcontext():
        task = progress.add_task("contamination", total=None, rate="")
        for batch in executor.map(TrainingNgrams(config, checker.index.lengths), batches):
            for offset, contaminated in enumerate(checker.process(batch)):
                parent.add(batch.record_hashes[offset])
                removed += contaminated
                if writer is not None and not contaminated:
                    writer.write(batch.lines[offset], batch.record_hashes[offset])
            records += len(batch.ids)
            rate = records / max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=len(batch.ids), rate=f"{rate:,.0f} rec/s")
        if writer is not None:
            writer.add_parent(Parent(str(training), parent.hexdigest(), parent.count))
    with atomic_writer(report) as handle:
        for row in checker.rows():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {
        "training_records": records,
        "training_dataset_hash": parent.hexdigest(),
        "training_records_touching_eval": removed,
        "eval_items": len(items),
        "sources": checker.summary(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def check_records(
    training: Iterable[Mapping[str, Any]],
    items: Sequence[EvalItem],
    config: ContaminationConfig,
    embedder: Embedder | None = None,
) -> list[dict[str, Any]]:
    """In-memory check of training records: the per-item report rows."""
    checker = ContaminationChecker(items, config, embedder)
    records = list(training)
    featurize = TrainingNgrams(config, checker.index.lengths)
    for first in range(0, len(records), 512):
        chunk = records[first : first + 512]
        checker.process(featurize((first, [(f"record {first + i}", json.dumps(r)) for i, r in enumerate(chunk)])))
    return checker.rows()
