"""`llmkit eval gate GATES.yaml --candidate C --baseline B`: a release decision with JUnit XML for CI."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EvalError
from .console import console
from .models import parse_options


def register_gate(commands) -> None:
    gate = commands.add_parser(
        "gate",
        help="decide a release: thresholds and no-regression rules per task and slice (exit 1 on failure)",
        description="decide a release: thresholds and no-regression rules per task and slice (exit 1 on failure)",
    )
    gate.add_argument("gates", metavar="GATES.yaml", help="the rules")
    gate.add_argument("--candidate", required=True, help="eval run directory, or a model to evaluate")
    gate.add_argument("--baseline", help="eval run directory, or a model to evaluate (needed by no-regression rules)")
    gate.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per rule)")
    gate.add_argument("--summary", metavar="FILE", help="write the markdown summary (also printed)")
    gate.add_argument("--output", "-o", default="runs/gate", help="where models are evaluated (default runs/gate)")
    gate.add_argument("--backend", default="reference", help="backend for a side that is a model (default reference)")
    gate.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE")
    gate.add_argument("--device", default="auto", help="where a local backend loads a model (default auto)")
    gate.set_defaults(func=run_gate)


def _run_dir(side: str, value: str, gates, args: argparse.Namespace) -> Path:
    """A run directory as given, or the run of `value` as a model on the gate file's tasks."""
    path = Path(value)
    if (path / "results.json").is_file():
        return path
    if not gates.tasks:
        raise EvalError(
            f"--{side} {value} is not an eval run directory (no results.json); to evaluate it as a model, "
            "list the tasks to run under `tasks:` in the gate file"
        )
    from ..evaluate import evaluate_model

    output = Path(args.output) / side
    console.print(f"evaluating {side} {value} on {', '.join(gates.tasks)} -> {output}")
    evaluate_model(
        value,
        gates.tasks,
        output,
        backend=args.backend,
        backend_options=parse_options(args.backend_option),
        device=args.device,
        limit=gates.limit,
        quiet=False,
    )
    return output


def run_gate(args: argparse.Namespace) -> int:
    from ..gate import load_gates, run_gates
    from ..gate_report import gate_markdown, junit_xml, write_text

    gates = load_gates(args.gates)
    candidate = _run_dir("candidate", args.candidate, gates, args)
    baseline = None if args.baseline is None else _run_dir("baseline", args.baseline, gates, args)
    outcomes = run_gates(gates, candidate, baseline)
    summary = gate_markdown(outcomes, str(candidate), None if baseline is None else str(baseline))
    if args.junit:
        write_text(args.junit, junit_xml(outcomes))
    if args.summary:
        write_text(args.summary, summary)
    console.print(summary, markup=False, highlight=False)
    return 0 if all(o.passed for o in outcomes) else 1
