"""`llmkit eval variants`: one task under several prompt formats, each compared item by item with the first."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from ..cache import ResponseCache, default_cache_path
from ..client import ModelClient
from ..errors import EvalError
from .console import console
from .models import add_backend_arguments, open_model, parse_options


def register_variants(commands) -> None:
    variants = commands.add_parser(
        "variants",
        help="prompt variants of one task as paired comparisons against the first: CI, McNemar, flipped items",
        description="run one task under several prompt formats and compare each with the first on the same items",
    )
    variants.add_argument("task", metavar="TASK", help="built-in task name or task .yaml")
    variants.add_argument(
        "--variants",
        required=True,
        help="YAML/JSON file: {name: {prompt field: value}}, in order; the first is the baseline",
    )
    add_backend_arguments(variants)
    variants.add_argument("--output", "-o", required=True, help="directory: one run per variant, variants.json/.md")
    variants.add_argument("--limit", type=int, help="first N samples")
    variants.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    variants.add_argument("--batch-size", type=int, default=8, help="sequences per backend call (default 8)")
    variants.add_argument("--cache", help=f"response cache file (default {default_cache_path()})")
    variants.add_argument("--no-cache", action="store_true", help="ask the model again for everything")
    variants.add_argument("--max-items", type=int, default=20, help="flipped items printed per variant and direction")
    variants.set_defaults(func=run_variants)


def run_variants(args: argparse.Namespace) -> int:
    from ..catalog import load_task
    from ..runner import RunOptions
    from ..variants import evaluate_variants, load_variants

    for name in ("limit", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise EvalError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    task, variants = load_task(args.task), load_variants(args.variants)
    options = parse_options(args.backend_option)
    backend, identity = open_model(args.backend, args.model, options, args.device)
    cache = None if args.no_cache else ResponseCache(args.cache)
    try:
        client = ModelClient(backend, identity, cache, batch_size=args.batch_size)
        run_info = {
            "model": args.model,
            "backend": args.backend,
            "backend_options": options,
            "model_identity": identity,
        }
        report = evaluate_variants(
            task,
            variants,
            client,
            Path(args.output),
            run_info,
            RunOptions(limit=args.limit, seed=args.seed, quiet=True),
        )
    finally:
        if cache is not None:
            cache.close()
    table = Table("variant", report["metric"], "95% CI", f"− {report['baseline']} (95% CI)", "McNemar p", "+", "−")
    for name, entry in report["variants"].items():
        estimate = entry["estimate"] or {}
        row = [name, f"{estimate.get('value', float('nan')):.4f}"]
        row.append(f"[{estimate.get('ci_low', float('nan')):.4f}, {estimate.get('ci_high', float('nan')):.4f}]")
        comparison = report["comparisons"].get(name)
        if comparison is None or comparison["n"] == 0:
            row += ["baseline" if comparison is None else "no shared items", "", "", ""]
        else:
            d = comparison["difference"]
            p = f"{comparison['mcnemar']['exact_p']:.4g}" if "mcnemar" in comparison else "—"
            row += [f"{d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", p]
            row += [str(len(comparison["improvements"])), str(len(comparison["regressions"]))]
        table.add_row(*row)
    console.print(table)
    for name, comparison in report["comparisons"].items():
        for kind, sign in (("improvements", "+"), ("regressions", "−")):
            flipped = comparison.get(kind) or []
            if flipped:
                shown = ", ".join(item["id"] for item in flipped[: args.max_items])
                more = f" … and {len(flipped) - args.max_items} more" if len(flipped) > args.max_items else ""
                console.print(f"{name} {sign} ({kind}): {shown}{more}")
    console.print(f"flipped items with responses: {Path(args.output) / 'variants.md'}")
    return 0
