"""Run tasks against a model: batches through the response cache, a progress bar, samples and results on disk."""

from __future__ import annotations

import dataclasses
import datetime
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .client import ModelClient, Usage
from .data import Sample
from .results import RunWriter
from .stats import bootstrap
from .tasks import Task


@dataclasses.dataclass(frozen=True)
class RunOptions:
    limit: int | None = None
    seed: int = 0
    chunk_size: int = 32  # samples per solver call; one cache write each
    concurrency: int = 1  # solver calls in flight (threads): >1 pays off for HTTP backends
    quiet: bool = False
    shuffle: bool = False  # seeded random order, before `limit`: a uniform random subsample


def aggregate(scored: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, dict[str, float | int]]:
    """Mean of each per-sample metric with a bootstrap 95% CI (samples lacking a metric are left out)."""
    names = list(dict.fromkeys(name for s in scored for name in s["metrics"]))
    out = {}
    for name in names:
        values = [s["metrics"][name] for s in scored if s["metrics"].get(name) is not None]
        out[name] = bootstrap(values, seed=seed).to_dict()
    return out


def curves(task: Task, metrics: dict[str, dict[str, float | int]]) -> dict[str, Any]:
    """Each of the task's curves as points read from metrics named `prefix + x`."""
    out = {}
    for name, curve in task.curves.items():
        points = []
        for metric, estimate in metrics.items():
            if metric.startswith(curve.prefix):
                x = metric[len(curve.prefix) :]
                points.append({"x": float(x) if _is_number(x) else x, **estimate})
        points.sort(key=lambda p: (isinstance(p["x"], str), p["x"]))
        out[name] = {
            "x_label": curve.x_label,
            "y_label": curve.y_label,
            "metric_prefix": curve.prefix,
            "kind": curve.kind,
            "points": points,
        }
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tags(sample: Sample) -> dict[str, Any]:
    """The item's `tags` field (slices for `eval gate`), when its record has one."""
    tags = sample.fields.get("tags")
    return {"tags": [tags] if isinstance(tags, str) else list(tags)} if tags else {}


def run_task(task: Task, client: ModelClient, writer: RunWriter, options: RunOptions) -> dict[str, Any]:
    """Solve and score every sample of `task`; returns the task's entry of results.json."""
    started = time.monotonic()
    dataset = task.dataset()
    pool = dataset.fewshot_pool or dataset.samples
    order = list(dataset.samples)
    if options.shuffle:  # before the limit: `--shuffle --limit N` is a uniform random subsample
        random.Random(options.seed).shuffle(order)
    order = order[: options.limit] if options.limit else order
    provenance = {
        **dataset.provenance,
        **({"limit": options.limit} if options.limit else {}),
        "shuffled": options.shuffle,
    }
    chunks = [order[i : i + options.chunk_size] for i in range(0, len(order), options.chunk_size)]
    usage_before = dataclasses.replace(client.usage)

    def solve(chunk: list[Sample]) -> list[dict[str, Any]]:
        prompts = [task.prompt.build(s, pool, client.render_chat) for s in chunk]
        responses = task.solver.solve(chunk, prompts, client, options.seed)
        scored = task.scorer.score_batch(chunk, responses)
        return [
            {"id": s.id, "prompt": p, "target": s.target, "response": r, **_tags(s), **sc}
            for s, p, r, sc in zip(chunk, prompts, responses, scored, strict=True)
        ]

    records: list[dict[str, Any]] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with (
        Progress(*columns, disable=options.quiet) as progress,
        ThreadPoolExecutor(options.concurrency) as pool_executor,
    ):
        bar = progress.add_task(task.name, total=len(order))
        for chunk_records in pool_executor.map(solve, chunks):
            records.extend(chunk_records)
            writer.append_samples(task.name, chunk_records)
            progress.advance(bar, len(chunk_records))
    metrics = aggregate(records, options.seed)
    usage = Usage(
        **{f.name: getattr(client.usage, f.name) - getattr(usage_before, f.name) for f in dataclasses.fields(Usage)}
    )
    return {
        **task.describe(),
        "dataset": provenance,
        "n": len(records),
        "metrics": metrics,
        "curves": curves(task, metrics),
        **({"summary": task.summarize(records)} if task.summarize else {}),
        "usage": dataclasses.asdict(usage),
        "duration_s": round(time.monotonic() - started, 2),
    }


def run_tasks(
    tasks: Sequence[Task], client: ModelClient, output: Path, run_info: dict[str, Any], options: RunOptions
) -> dict[str, Any]:
    """Run each task in order and write `results.json` (updated after every task) and `samples/*.jsonl`."""
    writer = RunWriter(output)
    results: dict[str, Any] = {
        "run": {**run_info, "started_at": _now(), "seed": options.seed, "limit": options.limit},
        "tasks": {},
    }
    for task in tasks:
        writer.reset_samples(task.name)
        results["tasks"][task.name] = run_task(task, client, writer, options)
        results["usage"] = dataclasses.asdict(client.usage)
        writer.write_results(results)
    results["run"]["finished_at"] = _now()
    writer.write_results(results)
    return results


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def primary_summary(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(task, metric, estimate) for each metric of each task, primary metric first."""
    rows = []
    for name, task in results["tasks"].items():
        metrics = task["metrics"]
        order = sorted(metrics, key=lambda m: (m != task.get("primary_metric"), "@" in m, m))
        rows += [(name, m, metrics[m]) for m in order]
    return rows
