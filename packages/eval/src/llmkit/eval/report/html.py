"""`llmkit eval report RUN`: one HTML file that opens offline (no scripts or styles fetched from anywhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..results import load_results
from . import plots


def _figures(results: dict[str, Any], judge: dict[str, Any] | None) -> list[dict[str, str]]:
    figures = []
    rows = []
    for name, task in results["tasks"].items():
        primary = task.get("primary_metric")
        if primary in task["metrics"]:
            rows.append((f"{name} · {primary}", task["metrics"][primary]))
    if rows:
        figures.append(
            {
                "id": "primary-metrics",
                "title": "Primary metric per task",
                "src": plots.metric_bars(rows, "Primary metric per task (95% CI)"),
            }
        )
    for name, task in results["tasks"].items():
        for curve_name, curve in (task.get("curves") or {}).items():
            if curve["points"]:
                title = {
                    "self_consistency": "Self-consistency: accuracy vs samples voted",
                    "position": "Lost in the middle: recall by position",
                }.get(curve_name, curve_name)
                if curve.get("kind") == "bars":
                    rows = [(f"{curve['x_label']} {p['x']}", p) for p in curve["points"]]
                    src = plots.metric_bars(rows, f"{name}: {curve['y_label']} (95% CI)")
                else:
                    src = plots.curve(curve["points"], curve["x_label"], curve["y_label"], f"{name}: {title}")
                figures.append({"id": f"{name}-{curve_name}", "title": f"{name}: {title}", "src": src})
    if judge:
        rows = [
            (f"{j} · flip rate", s["pairwise"]["flip_rate"])
            for j, s in judge["judges"].items()
            if s.get("pairwise", {}).get("n")
        ]
        if rows:
            figures.append(
                {
                    "id": "judge-flip-rates",
                    "title": "Judge flip rates under position swap",
                    "src": plots.metric_bars(rows, "Verdicts that flip when the answers swap places"),
                }
            )
    return figures


def render_report(run: str | Path) -> str:
    """The report of a run directory as one HTML string (a `judge.json` beside results.json is included)."""
    results = load_results(run)
    judge_path = Path(run) / "judge.json"
    judge = json.loads(judge_path.read_text()) if judge_path.is_file() else None
    environment = Environment(
        loader=PackageLoader("llmkit.eval.report", "templates"), autoescape=select_autoescape(["html", "jinja"])
    )
    template = environment.get_template("report.html.jinja")
    return template.render(results=results, judge=judge, figures=_figures(results, judge), run=str(run))


def write_report(run: str | Path, output: str | Path | None = None) -> Path:
    path = Path(output) if output else Path(run) / "report.html"
    path.write_text(render_report(run))
    return path
