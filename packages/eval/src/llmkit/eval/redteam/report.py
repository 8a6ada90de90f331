"""The red-team report: attack success per category, per generator and per both, with Wilson and bootstrap
95% CIs; what the guards caught; the transcripts that got through (JSONL) and an offline HTML page."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..report import plots
from ..stats import bootstrap

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound at 0/n and n/n, where the bootstrap collapses)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(values: Sequence[bool]) -> dict[str, Any]:
    """successes, n, rate, Wilson and percentile-bootstrap 95% intervals."""
    n, k = len(values), sum(bool(v) for v in values)
    low, high = wilson_interval(k, n)
    estimate = bootstrap([float(v) for v in values])
    return {"successes": k, "n": n, "rate": k / n, "wilson": [low, high], "bootstrap": [estimate.low, estimate.high]}


def _grouped(
    records: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str], field: str
) -> dict[str, Any]:
    groups: dict[str, list[bool]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(bool(record[field]))
    return {name: rate(values) for name, values in sorted(groups.items())}


def summarize(records: Sequence[Mapping[str, Any]], config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Attack success rate (the target gave in) and got-through rate (and no guard caught it), sliced."""
    if not records:
        raise ValueError("no finished attacks to report")
    guards = sorted({hit["guard"] for r in records for hit in r["caught_by"]})
    return {
        "config": dict(config or {}),
        "attacks": len(records),
        "success": rate([r["success"] for r in records]),
        "got_through": rate([r["got_through"] for r in records]),
        "by_category": _grouped(records, lambda r: r["category"], "success"),
        "by_generator": _grouped(records, lambda r: r["generator"], "success"),
        "by_category_generator": _grouped(records, lambda r: f"{r['category']} / {r['generator']}", "success"),
        "got_through_by_category": _grouped(records, lambda r: r["category"], "got_through"),
        "caught_by_guard": {
            name: rate([any(h["guard"] == name for h in r["caught_by"]) for r in records]) for name in guards
        },
    }


def _bars(table: Mapping[str, Mapping[str, Any]], title: str) -> str:
    rows = [(name, {"value": s["rate"], "ci_low": s["wilson"][0], "ci_high": s["wilson"][1]}) for name, s in table.items()]  # fmt: skip
    return plots.metric_bars(rows, title)


def write_report(directory: Path, records: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> dict[str, Any]:
    """report.json, got_through.jsonl (successful, uncaught transcripts) and report.html in `directory`."""
    summary = summarize(records, config)
    (directory / "report.json").write_text(json.dumps(summary, indent=2))
    through = [r for r in records if r["got_through"]]
    (directory / "got_through.jsonl").write_text("".join(json.dumps(r) + "\n" for r in through))
    figures = [
        {
            "title": "Attack success by category (95% Wilson CI)",
            "src": _bars(summary["by_category"], "attack success by category"),
        },
        {
            "title": "Attack success by generator (95% Wilson CI)",
            "src": _bars(summary["by_generator"], "attack success by generator"),
        },
    ]
    environment = Environment(loader=PackageLoader("llmkit.eval.redteam", "templates"), autoescape=select_autoescape(["html", "jinja"]))  # fmt: skip
    html = environment.get_template("redteam.html.jinja").render(summary=summary, figures=figures, through=through)
    (directory / "report.html").write_text(html)
    return summary
