"""Annotation files to statistics: (item, annotator, label) JSONL rows -> kappas, alpha, honeypots."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from llmkit.core.agreement import category_counts, category_order, cohen_kappa, fleiss_kappa
from llmkit.core.errors import InvalidParameterError

from ...errors import DataError
from ..records import iter_lines, parse_record
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


def agreement_report(
    annotations: Sequence[Annotation], level: str = "nominal", order: Sequence[Hashable] | None = None
) -> dict[str, Any]:
    """Krippendorff's alpha always; Cohen's kappa per annotator pair; Fleiss' kappa when every item has equal raters.

    Every statistic uses one category order: `order` when given (ordinal labels that are not numbers need
    it), else numbers ascending. Pairwise weighted kappas measure distance in ranks of that whole order.
    """
    annotators, items, matrix = reliability_matrix(annotations)
    if len(annotators) < 2:
        raise DataError("agreement needs at least two annotators")
    if level in ("interval", "ratio"):
        if order is not None:
            raise DataError(f"an order applies to nominal or ordinal labels; {level} data are ordered by value")
        if not all(isinstance(label, int | float) for _, _, label in annotations):
            raise DataError(f"{level} agreement needs numeric labels; use --level ordinal with --order for others")
    categories = category_order((label for _, _, label in annotations), order, ordered=level != "nominal")
    report: dict[str, Any] = {"annotators": len(annotators), "items": len(items), "annotations": len(annotations)}
    report["categories"] = categories
    alpha_order = categories if level in ("nominal", "ordinal") else None
    report["krippendorff_alpha"] = {"level": level, "value": krippendorff_alpha(matrix, level, alpha_order)}
    weights = None if level == "nominal" else "quadratic" if level == "interval" else "linear"
    pairs = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(annotators), 2):
        shared = [(x, y) for x, y in zip(matrix[i], matrix[j], strict=True) if x is not None and y is not None]
        if len(shared) >= 2:
            first, second = zip(*shared, strict=True)
            kappa = cohen_kappa(first, second, weights=weights, categories=categories)
            pairs[f"{a}|{b}"] = {"items": len(shared), "kappa": kappa}
    report["cohen_kappa"] = pairs
    labels_by_item = [[row[j] for row in matrix if row[j] is not None] for j in range(len(items))]
    try:
        table, _ = category_counts(labels_by_item, categories)
        report["fleiss_kappa"] = fleiss_kappa(table)
    except InvalidParameterError as err:
        report["fleiss_kappa"] = None
        report["fleiss_kappa_skipped"] = str(err)
    return report
