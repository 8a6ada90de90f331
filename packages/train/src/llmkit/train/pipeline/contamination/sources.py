"""Eval items to check against: JSONL files, or datasets registered through `llmkit_register_datasets`.

llmkit-eval registers its offline benchmarks there, so a training set is checked against everything
installed without llmkit-train importing llmkit-eval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from llmkit.core.errors import PluginError
from llmkit.core.plugins import registry

from ...errors import DataError
from ..records import iter_records, record_id, record_text


@dataclasses.dataclass(frozen=True)
class EvalItem:
    source: str  # dataset name or file path
    id: str
    text: str


def registered_datasets() -> list[str]:
    return registry("datasets").names()


def load_registered(name: str) -> list[EvalItem]:
    """Items of a dataset some installed plugin registered (llmkit-eval: mmlu, gsm8k, humaneval, ...)."""
    datasets = registry("datasets")
    if name not in datasets:
        known = ", ".join(datasets.names()) or "none (install llmkit-eval to get its benchmarks)"
        raise DataError(f"no dataset named {name!r} is registered; registered: {known}")
    items = []
    try:
        for index, row in enumerate(datasets.get(name)()):
            items.append(EvalItem(name, str(row.get("id", index)), str(row["text"])))
    except (KeyError, TypeError) as err:
        raise PluginError(f"dataset {name!r} ({datasets.owner(name)}) yielded a row without 'text': {err}") from None
    return items


def load_file(path: str | Path, fields: Sequence[str] = ()) -> list[EvalItem]:
    return [
        EvalItem(str(path), record_id(r, i), record_text(r, fields or None)) for i, r in enumerate(iter_records(path))
    ]


def load_eval_sources(specs: Iterable[str], fields: Sequence[str] = ()) -> list[EvalItem]:
    """Each spec is a JSONL path or a registered dataset name; "known" means every registered dataset."""
    items: list[EvalItem] = []
    for spec in specs:
        if spec == "known":
            for name in registered_datasets():
                items.extend(load_registered(name))
        elif Path(spec).is_file():
            items.extend(load_file(spec, fields))
        else:
            items.extend(load_registered(spec))
    if not items:
        raise DataError("no eval items to check against (give --eval FILE or NAME, or --known)")
    return items
