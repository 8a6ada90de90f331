"""`llmkit eval compare | report | judge`: what to make of finished runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import EvalError


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
    from .eval_commands import console

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
