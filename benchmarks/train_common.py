"""Helpers shared by the benchmarks/train_*.py measurement scripts: result paths, JSONL, summaries."""

from __future__ import annotations

import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def save_summary(name: str, summary: dict) -> Path:
    """benchmarks/results/train/NAME.json with the measurement and when it was taken."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**summary, "measured": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    print(json.dumps(summary, indent=2))
    return path
