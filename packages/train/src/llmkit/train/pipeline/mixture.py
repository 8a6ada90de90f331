"""Mixtures and curricula: weighted sources with temperature sampling, oversampled rare tags, easy->hard order.

Source i gets probability p_i ∝ w_i^(1/T) (w_i its weight, by default its size; T=1 keeps the weights,
larger T flattens toward uniform). Within a source every record has an expected count (its tag factors
times the source's share), realized by systematic sampling over a seeded shuffle, so each record
appears floor or ceil of its expectation and the total is exact. The mixture is written by seeking to
each chosen record (one pass to index offsets, one to write), so memory holds offsets, not records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmkit.core.errors import InvalidParameterError

from ..errors import DataError
from .records import parse_record, record_hash
from .versioning.manifest import DatasetWriter, hash_dataset

ORDERS = ("shuffle", "curriculum")


@dataclasses.dataclass(frozen=True)
class MixtureSource:
    name: str
    path: str
    weight: float | None = None  # None: the source's size


@dataclasses.dataclass(frozen=True)
class MixtureConfig:
    sources: tuple[MixtureSource, ...]
    total: int | None = None  # records in the mixture; None: the sources' total size
    temperature: float = 1.0
    upsample: tuple[tuple[str, float], ...] = ()  # (tag, factor): records with the tag count factor times
    tag_field: str = "tags"
    order: str = "shuffle"
    score_field: str = "difficulty"  # curriculum order: ascending score, easy first
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sources:
            raise InvalidParameterError("a mixture needs at least one source")
        if len({s.name for s in self.sources}) != len(self.sources):
            raise InvalidParameterError("mixture source names must be distinct")
        if self.temperature <= 0:
            raise InvalidParameterError(f"temperature must be > 0, got {self.temperature}")
        if self.order not in ORDERS:
            raise InvalidParameterError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if any(factor <= 0 for _, factor in self.upsample):
            raise InvalidParameterError("upsampling factors must be > 0")
        if any(s.weight is not None and s.weight <= 0 for s in self.sources):
            raise InvalidParameterError("source weights must be > 0")
        if self.total is not None and self.total < 1:
            raise InvalidParameterError(f"total must be >= 1, got {self.total}")

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "sources": [dataclasses.asdict(s) for s in self.sources],
            "upsample": dict(self.upsample),
        }


@dataclasses.dataclass
class SourceIndex:
    """Byte offset, upsampling factor and score of every record of one source."""

    offsets: np.ndarray  # int64
    factors: np.ndarray  # float64
    scores: np.ndarray | None  # float64, curriculum only
    tag_counts: dict[str, int]


def _tags(record: Mapping[str, Any], field: str) -> list[str]:
    value = record.get(field)
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def index_source(source: MixtureSource, config: MixtureConfig) -> SourceIndex:
    path = Path(source.path)
    if not path.is_file():
        raise DataError(f"mixture source {source.name}: {path} does not exist")
    factors_by_tag = dict(config.upsample)
    offsets, factors, scores, tag_counts = [], [], [], {tag: 0 for tag in factors_by_tag}
    with path.open("rb") as handle:
        number, position = 0, 0
        for raw in handle:
            number += 1
            start, position = position, position + len(raw)
            if not raw.strip():
                continue
            record = parse_record(raw.decode("utf-8"), f"{path}:{number}")
            factor = 1.0
            for tag in _tags(record, config.tag_field):
                if tag in factors_by_tag:
                    factor *= factors_by_tag[tag]
                    tag_counts[tag] += 1
            offsets.append(start)
            factors.append(factor)
            if config.order == "curriculum":
                score = record.get(config.score_field)
                if not isinstance(score, int | float) or isinstance(score, bool):
                    raise DataError(f"{path}:{number}: curriculum needs a numeric {config.score_field!r}")
                scores.append(float(score))
    if not offsets:
        raise DataError(f"mixture source {source.name}: {path} holds no records")
    return SourceIndex(
        np.array(offsets, dtype=np.int64),
        np.array(factors),
        np.array(scores) if config.order == "curriculum" else None,
        tag_counts,
    )


def source_probabilities(weights: Sequence[float], temperature: float) -> np.ndarray:
    """p_i ∝ w_i^(1/T)."""
    scaled = np.asarray(weights, dtype=np.float64) ** (1.0 / temperature)
    return scaled / scaled.sum()


def apportion(probabilities: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to `total`, by largest remainder (ties to the earlier source)."""
    exact = probabilities * total
    counts = np.floor(exact).astype(np.int64)
    remainder = total - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def systematic_copies(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer copies per record, each floor or ceil of its expectation, summing to round(sum(expected))."""
    cumulative = np.concatenate([[0.0], np.cumsum(expected)])
    offset = rng.random()
    return np.diff(np.floor(cumulative + offset)).astype(np.int64)


@dataclasses.dataclass
class MixturePlan:
    """Which records of which source, in output order, and the proportions they realize."""

    source_of: np.ndarray  # int64 [total]
    record_of: np.ndarray  # int64 [total], index within its source
    report: dict[str, Any]


def plan_mixture(config: MixtureConfig, indexes: Sequence[SourceIndex]) -> MixturePlan:
    rng = np.random.default_rng(config.seed)
    sizes = [len(ix.offsets) for ix in indexes]
    total = config.total or sum(sizes)
    weights = [
        s.weight if s.weight is not None else float(ix.factors.sum())
        for s, ix in zip(config.sources, indexes, strict=True)
    ]
    probabilities = source_probabilities(weights, config.temperature)
    counts = apportion(probabilities, total)
    sources, records = [], []
    for number, (index, count) in enumerate(zip(indexes, counts, strict=True)):
        order = rng.permutation(len(index.offsets))
        expected = index.factors[order] * (count / index.factors.sum())
        copies = systematic_copies(expected, rng)
        chosen = np.repeat(order, copies)
        sources.append(np.full(len(chosen), number, dtype=np.int64))
        records.append(chosen)
    source_of, record_of = np.concatenate(sources), np.concatenate(records)
    if config.order == "shuffle":
        permutation = rng.permutation(len(source_of))
    else:
        starts = np.cumsum([0, *sizes[:-1]])
        scores = np.concatenate([ix.scores for ix in indexes])[starts[source_of] + record_of]
        permutation = np.lexsort((rng.random(len(source_of)), scores))
    source_of, record_of = source_of[permutation], record_of[permutation]
    return MixturePlan(source_of, record_of, _report(config, indexes, probabilities, source_of, record_of, total))


def _report(config, indexes, probabilities, source_of, record_of, total) -> dict[str, Any]:
    per_source = []
    for number, (source, index) in enumerate(zip(config.sources, indexes, strict=True)):
        mine = record_of[source_of == number]
        per_source.append(
            {
                "name": source.name,
                "records": len(index.offsets),
                "weight": source.weight,
                "target_proportion": round(float(probabilities[number]), 6),
                "selected": len(mine),
                "effective_proportion": round(len(mine) / total, 6),
                "unique_records": len(np.unique(mine)),
                "epochs": round(len(mine) / len(index.offsets), 4),
            }
        )
    tags = {}
    for tag, factor in config.upsample:
        before = sum(ix.tag_counts[tag] for ix in indexes)
        tags[tag] = {"factor": factor, "share_in_sources": round(before / sum(len(ix.offsets) for ix in indexes), 6)}
    return {
        "total": total,
        "temperature": config.temperature,
        "order": config.order,
        "sources": per_source,
        "tags": tags,
    }


def build_mixture(config: MixtureConfig, output: str | Path) -> dict[str, Any]:
    """Index the sources, plan the mixture and write it (with a manifest naming every source as a parent)."""
    indexes = [index_source(source, config) for source in config.sources]
    plan = plan_mixture(config, indexes)
    tag_hits = dict.fromkeys(dict(config.upsample), 0)
    scores = []
    parents = [hash_dataset(s.path) for s in config.sources]
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(Path(s.path).open("rb")) for s in config.sources]
        writer = stack.enter_context(DatasetWriter(output, "mix", config.as_dict(), parents))
        for source, record in zip(plan.source_of.tolist(), plan.record_of.tolist(), strict=True):
            handle = handles[source]
            handle.seek(int(indexes[source].offsets[record]))
            line = handle.readline().decode("utf-8")
            parsed = parse_record(line, f"{config.sources[source].path} record {record}")
            for tag in _tags(parsed, config.tag_field):
                if tag in tag_hits:
                    tag_hits[tag] += 1
            if config.order == "curriculum":
                scores.append(float(parsed[config.score_field]))
            writer.write(line, record_hash(parsed))
    total = plan.report["total"]
    for tag, hits in tag_hits.items():
        plan.report["tags"][tag]["share_in_mixture"] = round(hits / total, 6)
    if scores:
        plan.report["curriculum"] = {
            "first_score": scores[0],
            "last_score": scores[-1],
            "sorted": scores == sorted(scores),
        }
    return plan.report


def parse_source_spec(spec: str) -> MixtureSource:
    """NAME=PATH[:WEIGHT] (or just PATH) into a `MixtureSource`."""
    name, _, rest = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)
    path, weight = rest, None
    if ":" in rest and rest.rsplit(":", 1)[1].replace(".", "", 1).isdigit():
        path, weight_text = rest.rsplit(":", 1)
        weight = float(weight_text)
    return MixtureSource(name, path, weight)


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2)
