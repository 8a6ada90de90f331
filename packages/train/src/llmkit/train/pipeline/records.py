"""Streaming JSONL records: read line by line with their location; the text of any record format.

Records stay on disk: stages take batches of raw lines, parse them where they run (a worker process
or a Ray task) and send back small results, so memory does not grow with the input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import DataError

TEXT_FIELDS = ("text", "messages", "prompt", "completion", "chosen", "rejected", "response", "question", "answer")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line of a JSONL file, streamed."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {file} does not exist")
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def parse_record(line: str, where: str) -> dict[str, Any]:
    """One JSON object from a line; a clear error naming `where` otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: a record must be a JSON object, not {type(record).__name__}")
    return record


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of a JSONL file, streamed."""
    for number, line in iter_lines(path):
        yield parse_record(line, f"{path}:{number}")


def count_records(path: str | Path) -> int:
    return sum(1 for _ in iter_lines(path))


def canonical_json(record: Mapping[str, Any]) -> str:
    """The one serialization a record hash is taken over: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 (hex) of the record's canonical JSON: equal content, equal hash, whatever the formatting."""
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat messages or a list of strings
        parts = []
        for item in value:
            if isinstance(item, Mapping):
                content = item.get("content")
                parts.append(f"{item.get('role', '')}: {_value_text(content)}" if content is not None else "")
            else:
                parts.append(_value_text(item))
        return "\n".join(p for p in parts if p)
    if isinstance(value, Mapping) and "content" in value:
        return _value_text(value["content"])
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def record_text(record: Mapping[str, Any], fields: Sequence[str] | None = None) -> str:
    """The text a record shows a model: the named fields, or its known text fields in a fixed order.

    Chat messages become "role: content" lines. A record with none of the known fields falls back to
    every string value, so plain {"question": ...} or {"body": ...} records still have a text.
    """
    if fields:
        missing = [f for f in fields if f not in record]
        if len(missing) == len(fields):
            raise DataError(f"record has none of the text fields {', '.join(fields)} (it has {', '.join(record)})")
        return "\n".join(_value_text(record[f]) for f in fields if f in record)
    present = [f for f in TEXT_FIELDS if f in record]
    if present:
        return "\n".join(_value_text(record[f]) for f in present)
    return "\n".join(v for _, v in sorted(record.items()) if isinstance(v, str))


def record_id(record: Mapping[str, Any], index: int) -> str:
    """The record's own `id` when it has one, else its position in the input."""
    value = record.get("id")
    return str(value) if value is not None else str(index)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of `size` consecutive items (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
