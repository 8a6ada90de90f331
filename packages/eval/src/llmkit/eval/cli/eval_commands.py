"""`llmkit eval run | list | compare | report | judge | gate | variants`."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

from rich.table import Table

from ..cache import ResponseCache, default_cache_path
from ..client import ModelClient
from ..errors import EvalError
from .analysis_commands import register_analysis, register_report_and_judge
from .console import console
from .gate_command import register_gate
from .models import add_backend_arguments, open_model, parse_options
from .variants_command import register_variants


def register(cli) -> None:
    evaluate = cli.command("eval", help="evaluate models: benchmarks, probes, judges, comparisons, reports")
    commands = evaluate.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    evaluate.set_defaults(func=lambda args: evaluate.print_help() or 0)

    run = commands.add_parser(
        "run", help="run tasks against a model and write a run directory", description="run tasks"
    )
    run.add_argument(
        "tasks", nargs="+", metavar="TASK", help="built-in task name (see `llmkit eval list`) or task .yaml"
    )
    add_backend_arguments(run)
    run.add_argument("--output", "-o", help="run directory (default runs/<timestamp>)")
    run.add_argument("--limit", type=int, help="first N samples of each task")
    run.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    run.add_argument("--batch-size", type=int, default=8, help="sequences per backend call (default 8)")
    run.add_argument("--chunk-size", type=int, default=32, help="samples per solver call and cache write (default 32)")
    run.add_argument("--concurrency", type=int, default=1, help="solver calls in flight (default 1; raise for HTTP)")
    run.add_argument("--cache", help=f"response cache file (default {default_cache_path()})")
    run.add_argument("--no-cache", action="store_true", help="ask the model again for everything")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--shuffle", action="store_true", help="seeded random order: a partial run is a uniform subsample")
    run.set_defaults(func=run_eval)

    listing = commands.add_parser("list", help="list built-in tasks", description="list built-in tasks")
    listing.set_defaults(func=list_tasks)

    register_analysis(commands)
    register_report_and_judge(commands)
    register_gate(commands)
    register_variants(commands)


def run_eval(args: argparse.Namespace) -> int:
    from ..catalog import load_task
    from ..runner import RunOptions, primary_summary, run_tasks

    for name in ("limit", "batch_size", "chunk_size", "concurrency"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise EvalError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    tasks = [load_task(spec) for spec in args.tasks]
    options = parse_options(args.backend_option)
    with console.status(f"opening {args.backend} backend for {args.model}", spinner="dots"):
        backend, identity = open_model(args.backend, args.model, options, args.device)
    cache = None if args.no_cache else ResponseCache(args.cache)
    client = ModelClient(backend, identity, cache, batch_size=args.batch_size)
    output = Path(args.output or f"runs/{_timestamp()}")
    run_info = {
        "command": "llmkit " + shlex.join(sys.argv[1:]) if sys.argv and "llmkit" in sys.argv[0] else None,
        "model": args.model,
        "backend": args.backend,
        "backend_options": options,
        "model_identity": identity,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _print_warning
        run_options = RunOptions(args.limit, args.seed, args.chunk_size, args.concurrency, args.quiet, args.shuffle)
        results = run_tasks(tasks, client, output, run_info, run_options)
    table = Table("task", "metric", "value", "95% CI", "n")
    for task, metric, estimate in primary_summary(results):
        table.add_row(
            task,
            metric,
            f"{estimate['value']:.4f}",
            f"[{estimate['ci_low']:.4f}, {estimate['ci_high']:.4f}]",
            str(estimate["n"]),
        )
    console.print(table)
    usage = results["usage"]
    generated = usage["prompt_tokens"] or usage["completion_tokens"]  # log-likelihood scoring counts none
    tokens = (
        f"generation: {usage['prompt_tokens']} prompt and {usage['completion_tokens']} completion tokens"
        if generated
        else "no generation"
    )
    console.print(
        f"{usage['requests']} requests ({usage['cached']} from cache); {tokens}; results in {output / 'results.json'}"
    )
    return 0


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. dropped dataset rows) as one plain line on stderr, shown when they happen."""
    print(f"llmkit: warning: {message}", file=sys.stderr)


def list_tasks(args: argparse.Namespace) -> int:
    from ..catalog import all_builtin_tasks

    table = Table("task", "solver", "scorer", "description")
    for name, build in all_builtin_tasks().items():
        task = build()
        table.add_row(name, task.solver.kind, type(task.scorer).__name__, task.description)
    console.print(table)
    return 0


def _timestamp() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
