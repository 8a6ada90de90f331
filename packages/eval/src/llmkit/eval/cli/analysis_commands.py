"""`llmkit eval compare | report | judge`: what to make of finished runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmkit.core.device import add_device_argument

from ..errors import EvalError
from .console import console


def register_analysis(commands) -> None:
    compare = commands.add_parser(
        "compare",
        help="paired comparison of two runs: bootstrap CI, McNemar, flipped items",
        description="compare two runs",
    )
    compare.add_argument("run_a", metavar="RUN_A", help="baseline run directory")
    compare.add_argument("run_b", metavar="RUN_B", help="candidate run directory")
    compare.add_argument("--output", "-o", help="write the regression report here (.md, or .json for data)")
    compare.add_argument("--max-items", type=int, default=20, help="flipped items listed per task and direction")
    compare.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from ..compare import compare_runs, regression_markdown

    comparison = compare_runs(args.run_a, args.run_b)
    markdown = regression_markdown(comparison, max_items=args.max_items)
    if args.output:
        path = Path(args.output)
        path.write_text(json.dumps(comparison, indent=2) if path.suffix == ".json" else markdown)
        console.print(f"regression report written to {path}")
    else:
        print(markdown)
    if not comparison["tasks"]:
        raise EvalError(f"runs {args.run_a} and {args.run_b} share no task")
    return 0


def register_report_and_judge(commands) -> None:
    report = commands.add_parser(
        "report", help="write a self-contained HTML report of a run", description="HTML report of a run"
    )
    report.add_argument("run", metavar="RUN", help="run directory")
    report.add_argument("--output", "-o", help="HTML file (default RUN/report.html)")
    report.set_defaults(func=run_report)

    judge = commands.add_parser(
        "judge",
        help="LLM-as-judge on two runs' answers: position swap, flip rates, agreement, calibration, length bias",
        description="judge two runs' answers to the same task",
    )
    judge.add_argument("run_a", metavar="RUN_A")
    judge.add_argument("run_b", metavar="RUN_B")
    judge.add_argument("--task", required=True, help="a generation task both runs hold")
    judge.add_argument(
        "--judge",
        action="append",
        required=True,
        metavar="[BACKEND:]MODEL",
        help="a judge (repeatable), e.g. reference:smollm2",
    )
    judge.add_argument(
        "--judge-option", action="append", default=[], metavar="KEY=VALUE", help="backend option for every judge"
    )
    add_device_argument(judge)
    judge.add_argument(
        "--method", choices=["generate", "loglikelihood"], default="generate", help="how a verdict is read"
    )
    judge.add_argument("--rubric", action="store_true", help="also grade every answer on the 1-10 rubric")
    judge.add_argument(
        "--human-labels", help="JSONL of {id, label} with label x, y or tie: calibration (Cohen's kappa)"
    )
    judge.add_argument("--limit", type=int, help="first N shared items")
    judge.add_argument("--output", "-o", help="judge results (default RUN_B/judge.json)")
    judge.set_defaults(func=run_judge)


def run_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.run, args.output)
    console.print(f"report written to {path}")
    return 0


def run_judge(args: argparse.Namespace) -> int:
    from ..judging_run import judge_runs

    summary = judge_runs(args)
    path = Path(args.output or Path(args.run_b) / "judge.json")
    path.write_text(json.dumps(summary, indent=2))
    for name, judge in summary["judges"].items():
        p = judge["pairwise"]
        console.print(
            f"{name}: {p['n']} pairs, flip rate {p['flip_rate']['value']:.3f} "
            f"[{p['flip_rate']['ci_low']:.3f}, {p['flip_rate']['ci_high']:.3f}], x wins {p['win_rate_x']['value']:.3f}, "
            f"y wins {p['win_rate_y']['value']:.3f}"
        )
    console.print(f"judge results written to {path}")
    return 0
