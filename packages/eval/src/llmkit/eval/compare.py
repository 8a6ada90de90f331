"""Paired comparison of two runs: per-item differences, bootstrap CI, McNemar, and the items that flipped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .results import load_results, load_samples
from .stats import bootstrap, mcnemar, paired_bootstrap


def _excerpt(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _response_text(record: dict[str, Any]) -> str:
    response = record.get("response") or {}
    if response.get("completions"):
        return response["completions"][0]
    detail = record.get("detail") or {}
    return f"pred={detail.get('pred')}" if "pred" in detail else ""


def compare_task(run_a: Path, run_b: Path, task: str, metric: str) -> dict[str, Any]:
    """Compare one task's metric item by item over the samples both runs scored."""
    a = {r["id"]: r for r in load_samples(run_a, task)}
    b = {r["id"]: r for r in load_samples(run_b, task)}
    ids = [i for i in a if i in b and metric in a[i]["metrics"] and metric in b[i]["metrics"]]
    out: dict[str, Any] = {
        "metric": metric,
        "n": len(ids),
        "only_in_a": len(set(a) - set(b)),
        "only_in_b": len(set(b) - set(a)),
    }
    if not ids:
        return out
    x = [float(a[i]["metrics"][metric]) for i in ids]
    y = [float(b[i]["metrics"][metric]) for i in ids]
    out["a"], out["b"] = bootstrap(x).to_dict(), bootstrap(y).to_dict()
    out["difference"] = paired_bootstrap(x, y).to_dict()
    binary = all(v in (0.0, 1.0) for v in x + y)
    if binary:
        out["mcnemar"] = dataclasses.asdict(mcnemar([v == 1.0 for v in x], [v == 1.0 for v in y]))

    def flip(i: str) -> dict[str, Any]:
        return {
            "id": i,
            "a": a[i]["metrics"][metric],
            "b": b[i]["metrics"][metric],
            "prompt": _excerpt(a[i].get("prompt", "")),
            "target": _excerpt(a[i].get("target", "")),
            "response_a": _excerpt(_response_text(a[i])),
            "response_b": _excerpt(_response_text(b[i])),
        }

    out["regressions"] = [flip(i) for i, u, v in zip(ids, x, y, strict=True) if v < u]
    out["improvements"] = [flip(i) for i, u, v in zip(ids, x, y, strict=True) if v > u]
    return out


def compare_runs(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Every task both runs hold, on its primary metric."""
    results_a, results_b = load_results(run_a), load_results(run_b)
    tasks = {}
    for name, task in results_a["tasks"].items():
        if name in results_b["tasks"]:
            tasks[name] = compare_task(Path(run_a), Path(run_b), name, task.get("primary_metric", "acc"))
    return {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "model_a": results_a["run"].get("model"),
        "model_b": results_b["run"].get("model"),
        "tasks": tasks,
    }


def regression_markdown(comparison: dict[str, Any], max_items: int = 20) -> str:
    """The regression report: one table row per task, then the flipped items."""
    lines = [
        f"# Regression report: {comparison['run_b']} vs {comparison['run_a']}",
        "",
        "| task | metric | n | A | B | B − A (95% CI) | McNemar p (exact) | regressions | improvements |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, task in comparison["tasks"].items():
        if task["n"] == 0:
            lines.append(f"| {name} | {task['metric']} | 0 | | | | | | |")
            continue
        d = task["difference"]
        p = f"{task['mcnemar']['exact_p']:.4g}" if "mcnemar" in task else "—"
        lines.append(
            f"| {name} | {task['metric']} | {task['n']} | {task['a']['value']:.4f} | {task['b']['value']:.4f} | "
            f"{d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | {p} | {len(task['regressions'])} | "
            f"{len(task['improvements'])} |"
        )
    for name, task in comparison["tasks"].items():
        for kind in ("regressions", "improvements"):
            items = task.get(kind) or []
            if not items:
                continue
            lines += [
                "",
                f"## {name}: {kind} ({len(items)})",
                "",
                "| id | A | B | target | response A | response B |",
                "|---|---|---|---|---|---|",
            ]
            for item in items[:max_items]:
                cells = [
                    item["id"],
                    f"{item['a']:.3g}",
                    f"{item['b']:.3g}",
                    item["target"],
                    item["response_a"],
                    item["response_b"],
                ]
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            if len(items) > max_items:
                lines.append(f"\n… and {len(items) - max_items} more (see --output report.json)")
    return "\n".join(lines) + "\n"
