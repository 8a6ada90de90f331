"""Local JSONL and CSV files, and the Hugging Face hub through `datasets` where a machine can reach it."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import EvalError
from .dataset import Dataset, sample_from_record
from .packaged import file_sha256


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .csv file as dicts; a bad line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"no such data file: {path}")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [dict(row) for row in csv.DictReader(f)]
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise EvalError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return records


def _from_records(
    name: str, records: list[Mapping[str, Any]], provenance: dict[str, Any], fields: Mapping[str, str | None]
) -> Dataset:
    samples = [
        sample_from_record(r, i, fields.get("id"), fields.get("target"), fields.get("choices"))
        for i, r in enumerate(records)
    ]
    return Dataset(name, samples, provenance)


def load_jsonl(path: str | Path, name: str | None = None, **fields: str | None) -> Dataset:
    """A local JSONL file; `id`, `target`, `choices` name the record fields to use."""
    path = Path(path)
    provenance = {"source": "file", "path": str(path.resolve()), "sha256": file_sha256(path)} if path.is_file() else {}
    return _from_records(name or path.stem, read_records(path), provenance, fields)


load_csv = load_jsonl  # one loader, chosen by suffix


def load_hub(path: str, split: str = "test", name: str | None = None, config: str | None = None, **fields) -> Dataset:
    """A dataset from the Hugging Face hub (needs `pip install llmkit-eval[hub]` and network access)."""
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        raise EvalError("hub datasets need the `datasets` package: pip install 'llmkit-eval[hub]'")
    import datasets

    try:
        data = datasets.load_dataset(path, config, split=split)
    except Exception as err:  # network, auth, unknown name: all surface as one line
        raise EvalError(f"cannot load {path} ({split}) from the hub: {type(err).__name__}: {err}") from None
    provenance = {"source": "hub", "path": path, "config": config, "split": split, "fingerprint": data._fingerprint}
    return _from_records(name or path.split("/")[-1], list(data), provenance, fields)
