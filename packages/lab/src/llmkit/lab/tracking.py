"""MLflow tracking for experiments: a local SQLite store by default (nothing to start), any server by URI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .errors import LabError

KILLED_AFTER_RESUME = "KILLED"


def default_tracking_uri(root: str | Path | None = None) -> str:
    """$MLFLOW_TRACKING_URI when set, else sqlite:///<root>/mlflow.db with root $LLMKIT_HOME/lab by default."""
    if root is None and os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if root is None:
        home = os.environ.get("LLMKIT_HOME") or Path.home() / ".cache" / "llmkit"
        root = Path(home) / "lab"
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(tracking_uri: str, experiment: str) -> str | None:
    """Artifacts of a local SQLite store live beside the database (MLflow's default is ./mlruns of the cwd)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None  # a server decides where its artifacts go
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.parent / "artifacts" / experiment).resolve().as_uri()


def client(tracking_uri: str):
    """An MlflowClient whose tracking and model registry both live at `tracking_uri`."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def git_commit(path: str | Path = ".") -> str | None:
    """The checkout's commit (with +dirty when edited), or None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


class Tracker:
    """One MLflow experiment: a run per (arm, seed) unit, params, per-step metrics and artifacts."""

    def __init__(self, tracking_uri: str, experiment: str):
        self.uri = tracking_uri
        self.client = client(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_root(tracking_uri, experiment)
            )
        else:
            self.experiment_id = found.experiment_id

    def start(self, run_name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id

    def end_unfinished(self, unit: str) -> list[str]:
        """Runs of `unit` a killed experiment left RUNNING are marked KILLED; returns their ids."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`llmkit.unit` = '{unit}' and attributes.status = 'RUNNING'"
        )
        for run in runs:
            self.client.set_terminated(run.info.run_id, status=KILLED_AFTER_RESUME)
        return [run.info.run_id for run in runs]

    def params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _text(v)[:6000]) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def step_metrics(self, run_id: str, records: list[dict[str, Any]], prefix: str = "train.") -> int:
        """Every numeric value of every step record (metrics.jsonl), at its step; returns how many."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(prefix + key, float(value), now, int(record["step"]))
            for record in records
            for key, value in record.items()
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])
        return len(metrics)

    def metrics(self, run_id: str, values: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items() if math.isfinite(float(v))]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def artifact(self, run_id: str, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise LabError(f"artifact {path} does not exist")
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), folder)
        else:
            self.client.log_artifact(run_id, str(path), folder)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
