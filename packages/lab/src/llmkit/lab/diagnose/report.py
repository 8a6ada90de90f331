"""`diagnose()`: cases in, the report out (what the JSON file holds), and its rich rendering."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import LabError
from .cases import FailingCase
from .execute import run_interventions
from .interventions import Settings
from .verdict import LAYERS, case_layer, intervention_evidence, verdict


def diagnose(
    cases: Sequence[FailingCase],
    backend,
    compare_backend=None,
    settings: Settings = Settings(),
    *,
    model: str = "",
    compare_model: str | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the decision tree's interventions on every case and decide: returns the report (JSON-ready)."""
    if not cases:
        raise LabError("no failing cases to diagnose")
    if len({c.id for c in cases}) != len(cases):
        raise LabError("case ids repeat; give each JSONL record a distinct 'id'")
    results = run_interventions(cases, backend, compare_backend, settings, batch_size=batch_size, progress=progress)
    per_case = []
    for case, outcomes in zip(cases, results, strict=True):
        layer, decided_by = case_layer(case, outcomes)
        per_case.append(
            {
                "id": case.id,
                "source": case.source,
                "expected": case.expected,
                "layer": layer,
                "decided_by": decided_by,
                "growth": case.growth.to_dict() if case.growth else None,
                "lint": case.lint,
                "outcomes": {name: outcome.to_dict() for name, outcome in outcomes.items()},
            }
        )
    return {
        "verdict": verdict(cases, results, compare_model),
        "interventions": intervention_evidence(results),
        "cases": per_case,
        "model": model,
        "backend": getattr(backend, "name", type(backend).__name__),
        "compare_model": compare_model,
        "settings": dataclasses.asdict(settings),
    }


def _interval(row: dict[str, Any]) -> str:
    if not row["ran"]:
        return "—"
    return f"{row['fixed']}/{row['ran']} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The evidence table, the per-case layers, the lint and growth seen, and the verdict."""
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    table = Table("intervention", "layer", "fixed / failing [95% Wilson]", "McNemar p", "note", title="evidence")
    for row in report["interventions"]:
        p = "—" if row["mcnemar_p"] is None else f"{row['mcnemar_p']:.3g}"
        layer = LAYERS.get(row["layer"], "")
        note = "; ".join(f"skipped for {count}: {reason}" for reason, count in row["skipped"].items())
        table.add_row(row["name"], f"{row['layer']} {layer}", _interval(row), p, note)
    console.print(table)
    cases = Table("case", "layer", "decided by", "baseline reply", title="cases")
    for case in report["cases"]:
        base = case["outcomes"]["baseline"]
        reply = (base.get("replies") or [""])[0].strip().replace("\n", " ")
        layer = "not reproduced" if case["layer"] is None else f"{case['layer']} {LAYERS[case['layer']]}"
        cases.add_row(case["id"], layer, case["decided_by"] or "—", reply[:60])
    console.print(cases)
    for case in report["cases"]:
        for finding in case["lint"]:
            console.print(f"[yellow]lint[/yellow] {case['id']}: {finding['rule']} ({finding['severity']}): "
                          f"{finding['message']}", markup=True, highlight=False)  # fmt: skip
        if case["growth"] and len(case["growth"]["prompt_tokens"]) == 1:
            console.print(f"context {case['id']}: {case['growth']['prompt_tokens'][0]} tokens", highlight=False)
        elif case["growth"] and case["growth"]["prompt_tokens"]:
            tokens = case["growth"]["prompt_tokens"]
            shown = ", ".join(map(str, tokens)) if len(tokens) <= 12 else f"{tokens[0]}, …, {tokens[-1]}"
            unbounded = "unbounded" if case["growth"]["unbounded"] else "bounded"
            console.print(f"growth {case['id']}: prompt tokens per call {shown} ({unbounded})", highlight=False)
    v = report["verdict"]
    if v["layer"] is None:
        console.print(f"[bold]verdict[/bold]: {v['layer_name']} — {v['fix']}")
        return
    by = f", decided by {v['intervention']}" if v["intervention"] else ", no intervention helped"
    layers = ", ".join(f"{LAYERS[int(x)]}: {n}" for x, n in v["per_layer"].items())
    console.print(
        f"[bold]verdict[/bold]: layer {v['layer']} ({v['layer_name']}) for {v['cases']} of {v['of']} reproduced "
        f"failure(s){by} (cases per layer: {layers})\n[bold]fix[/bold]: {v['fix']}",
        highlight=False,
    )
