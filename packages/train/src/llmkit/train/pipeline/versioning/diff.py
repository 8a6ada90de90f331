"""`llmkit data diff A B`: records added, removed and changed between two dataset versions.

Records are matched by content hash; with a key field (`id` by default, when records have one) a key
present in both with different content is "changed" rather than one removal plus one addition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from ..records import iter_lines, parse_record, record_hash


@dataclasses.dataclass(frozen=True)
class RecordRef:
    index: int  # position in its file (0-based, blank lines skipped)
    key: str | None
    record_hash: str


@dataclasses.dataclass
class DatasetDiff:
    added: list[RecordRef]  # in B only
    removed: list[RecordRef]  # in A only
    changed: list[tuple[RecordRef, RecordRef]]  # same key, different content (A's, B's)
    unchanged: int

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _refs(path: str | Path, key_field: str | None) -> Iterator[RecordRef]:
    for index, (number, line) in enumerate(iter_lines(path)):
        record = parse_record(line, f"{path}:{number}")
        key = record.get(key_field) if key_field else None
        yield RecordRef(index, None if key is None else str(key), record_hash(record))


def diff_datasets(first: str | Path, second: str | Path, key_field: str | None = "id") -> DatasetDiff:
    """Compare two JSONL datasets by record content (a multiset: duplicates count)."""
    remaining: dict[str, list[RecordRef]] = {}
    for ref in _refs(first, key_field):
        remaining.setdefault(ref.record_hash, []).append(ref)
    added, unchanged = [], 0
    for ref in _refs(second, key_field):
        if remaining.get(ref.record_hash):
            remaining[ref.record_hash].pop(0)
            unchanged += 1
        else:
            added.append(ref)
    removed = sorted((r for refs in remaining.values() for r in refs), key=lambda r: r.index)
    changed: list[tuple[RecordRef, RecordRef]] = []
    if key_field:
        removed_by_key = {r.key: r for r in removed if r.key is not None}
        matched = set()
        still_added = []
        for ref in added:
            old = removed_by_key.get(ref.key) if ref.key is not None else None
            if old is not None and old.key not in matched:
                changed.append((old, ref))
                matched.add(old.key)
            else:
                still_added.append(ref)
        added = still_added
        removed = [r for r in removed if r.key is None or r.key not in matched]
    return DatasetDiff(added, removed, changed, unchanged)
