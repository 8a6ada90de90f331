"""Annotation files to statistics: (item, annotator, label) JSONL rows -> kappas, alpha, honeypots."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from llmkit.core.errors import InvalidParameterError

from ...errors import DataError
from ..records import iter_lines, parse_record
from .agreement import category_counts, cohen_kappa, fleiss_kappa
from .krippendorff import krippendorff_alpha

Annotation = tuple[str, Hashable, Hashable]  # (annotator, item, label)


def _hashable(value: Any, where: str) -> Hashable:
    if isinstance(value, list | dict):
        raise DataError(f"{where}: a label or item must be a string or number, not {type(value).__name__}")
    return value


def load_annotations(
    path: str | Path, item_field: str = "item", annotator_field: str = "annotator", label_field: str = "label"
) -> list[Annotation]:
    rows = []
    for number, line in iter_lines(path):
        where = f"{path}:{number}"
        record = parse_record(line, where)
        missing = [f for f in (item_field, annotator_field, label_field) if f not in record]
        if missing:
            raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
        rows.append(
            (
                str(record[annotator_field]),
                _hashable(record[item_field], where),
                _hashable(record[label_field], where),
            )
        )
    return rows


def reliability_matrix(annotations: Sequence[Annotation]) -> tuple[list[str], list[Hashable], list[list[Any]]]:
    """(annotators, items, [annotator][item] label or None); a second label for the same pair is an error."""
    annotators = sorted({a for a, _, _ in annotations})
    items = list(dict.fromkeys(item for _, item, _ in annotations))
    row_of, column_of = {a: i for i, a in enumerate(annotators)}, {it: j for j, it in enumerate(items)}
    matrix: list[list[Any]] = [[None] * len(items) for _ in annotators]
    for annotator, item, label in annotations:
        cell = matrix[row_of[annotator]]
        if cell[column_of[item]] is not None:
            raise DataError(f"annotator {annotator!r} labelled item {item!r} twice")
        cell[column_of[item]] = label
    return annotators, items, matrix


def agreement_report(annotations: Sequence[Annotation], level: str = "nominal") -> dict[str, Any]:
    """Krippendorff's alpha always; Cohen's kappa per annotator pair; Fleiss' kappa when every item has equal raters."""
    annotators, items, matrix = reliability_matrix(annotations)
    if len(annotators) < 2:
        raise DataError("agreement needs at least two annotators")
    report: dict[str, Any] = {"annotators": len(annotators), "items": len(items), "annotations": len(annotations)}
    report["krippendorff_alpha"] = {"level": level, "value": krippendorff_alpha(matrix, level)}
    pairs = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(annotators), 2):
        shared = [(x, y) for x, y in zip(matrix[i], matrix[j], strict=True) if x is not None and y is not None]
        if len(shared) >= 2:
            weights = None if level == "nominal" else "quadratic" if level == "interval" else "linear"
            pairs[f"{a}|{b}"] = {"items": len(shared), "kappa": cohen_kappa(*zip(*shared, strict=True), weights)}
    report["cohen_kappa"] = pairs
    labels_by_item = [[row[j] for row in matrix if row[j] is not None] for j in range(len(items))]
    try:
        table, _ = category_counts(labels_by_item)
        report["fleiss_kappa"] = fleiss_kappa(table)
    except InvalidParameterError as err:
        report["fleiss_kappa"] = None
        report["fleiss_kappa_skipped"] = str(err)
    return report
