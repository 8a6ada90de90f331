"""Metrics: one JSON line per step in metrics.jsonl, a printed line every `logging_steps`, a progress bar."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Shown in the printed line after the loss and the method's own headline metrics, in this order, when present.
HEADLINE = ("kl", "eval_accuracy", "eval_reward_margin", "eval_loss", "lr", "tokens_per_s")
EVAL_HEADLINE = ("eval_loss", "eval_accuracy", "eval_reward_margin")


def line_keys(method_headline: tuple[str, ...]) -> tuple[str, ...]:
    """The printed line: loss, the method's headline metrics (`Method.headline_metrics`), then the rest."""
    return tuple(dict.fromkeys(("loss", *method_headline, *HEADLINE)))


def bar_keys(method_headline: tuple[str, ...]) -> tuple[str, ...]:
    """The progress bar: loss, the method's headline metrics and the learning rate."""
    return tuple(dict.fromkeys(("loss", *method_headline, "lr")))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def format_metrics(record: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = []
    for key in keys:
        if key in record:
            value = record[key]
            parts.append(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class MetricsLog:
    """Appends step records to metrics.jsonl (main process only); on resume, drops steps after the checkpoint."""

    def __init__(self, output_dir: Path, enabled: bool):
        self.path = output_dir / "metrics.jsonl"
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        if not (self.enabled and self.path.is_file()):
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")
                handle.flush()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The step records of a metrics.jsonl (or of a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ProgressDisplay:
    """A rich progress bar over steps (main process, when asked) plus printed metric lines, each showing the
    loss and the method's headline metrics (DPO: accuracy, reward_margin; reward model: accuracy; ...)."""

    def __init__(
        self,
        total: int,
        start: int,
        enabled: bool,
        main: bool,
        description: str,
        method_headline: tuple[str, ...] = (),
    ):
        self.console = Console(stderr=True)
        self.main = main
        self.bar_keys, self.line_keys = bar_keys(method_headline), line_keys(method_headline)
        self.progress = Progress(
            TextColumn(f"[bold]{description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            disable=not (enabled and main),
        )
        self.task = self.progress.add_task(description, total=total, completed=start, status="")

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def step(self, record: dict[str, Any], print_line: bool) -> None:
        self.progress.update(self.task, advance=1, status=format_metrics(record, self.bar_keys))
        if print_line:
            self.print(f"step {record['step']}: {format_metrics(record, self.line_keys)}")

    def print(self, message: str) -> None:
        if self.main:
            if self.progress.disable:
                print(message, file=sys.stderr, flush=True)
            else:
                self.progress.console.print(message, markup=False, highlight=False)
