"""Run state in SQLite after every step, so an interrupted run resumes exactly where it stopped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import CheckpointError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, task TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS states (
    run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL, state TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (run_id, step)
);
"""


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def fingerprint(config: dict[str, Any]) -> str:
    """A short hash of what decides a run's behavior (agent kind, name, tools, prompts, limits)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    kind: str
    task: str
    fingerprint: str
    status: str  # running, finished, stopped, failed
    created: float
    updated: float
    steps: int


class CheckpointStore:
    """One SQLite file holding any number of runs; each `save` is one committed transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise CheckpointError(f"cannot open checkpoint store {self.path}: {err}") from None

    def start(self, run_id: str, kind: str, task: str, config_fingerprint: str) -> None:
        now = time.time()
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, 'running', ?, ?)",
                    (run_id, kind, task, config_fingerprint, now, now),
                )
            except sqlite3.IntegrityError:
                raise CheckpointError(f"run {run_id!r} already exists in {self.path}; resume it instead") from None

    def save(self, run_id: str, step: int, state: dict[str, Any], status: str = "running") -> None:
        payload = json.dumps(state, ensure_ascii=False, default=str)
        now = time.time()
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)", (run_id, step, payload, now))
            self._db.execute("UPDATE runs SET status = ?, updated = ? WHERE run_id = ?", (status, now, run_id))

    def has(self, run_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def record(self, run_id: str) -> RunRecord:
        with self._lock:
            row = self._db.execute(
                "SELECT r.*, (SELECT COUNT(*) FROM states s WHERE s.run_id = r.run_id) FROM runs r WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        if row is None:
            raise CheckpointError(f"no run {run_id!r} in {self.path}")
        return RunRecord(*row)

    def latest(self, run_id: str) -> tuple[int, dict[str, Any]]:
        """(step, state) of the run's last saved step."""
        self.record(run_id)
        with self._lock:
            row = self._db.execute(
                "SELECT step, state FROM states WHERE run_id = ? ORDER BY step DESC LIMIT 1", (run_id,)
            ).fetchone()
        if row is None:
            raise CheckpointError(f"run {run_id!r} has no saved step yet")
        try:
            return row[0], json.loads(row[1])
        except json.JSONDecodeError:
            raise CheckpointError(f"the saved state of run {run_id!r} is corrupt") from None

    def history(self, run_id: str) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT step, state FROM states WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        return [(step, json.loads(state)) for step, state in rows]

    def runs(self) -> list[RunRecord]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT run_id FROM runs ORDER BY created").fetchall()]
        return [self.record(run_id) for run_id in ids]

    def close(self) -> None:
        self._db.close()
