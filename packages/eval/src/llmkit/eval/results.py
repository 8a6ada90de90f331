"""Run directories: `results.json` (metrics with CIs, provenance) and `samples/<task>.jsonl` (every item)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import EvalError


class RunWriter:
    """Writes one run directory; sample lines are appended as chunks finish, results rewritten atomically."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        (self.directory / "samples").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def samples_path(self, task: str) -> Path:
        return self.directory / "samples" / f"{task}.jsonl"

    def reset_samples(self, task: str) -> None:
        self.samples_path(task).write_text("")

    def append_samples(self, task: str, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        with self._lock, self.samples_path(task).open("a") as f:
            f.write(lines)

    def write_results(self, results: dict[str, Any]) -> None:
        path = self.directory / "results.json"
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
        os.replace(partial, path)


def load_results(run: str | Path) -> dict[str, Any]:
    """results.json of a run directory (or the file itself)."""
    path = Path(run)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        raise EvalError(f"no results.json at {path}; pass a run directory written by `llmkit eval run`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise EvalError(f"{path} is not valid JSON: {err}") from None


def load_samples(run: str | Path, task: str) -> list[dict[str, Any]]:
    """The per-sample records of one task of a run."""
    path = Path(run) / "samples" / f"{task}.jsonl"
    if not path.is_file():
        raise EvalError(f"run {run} has no samples for task {task!r} ({path} is missing)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
