"""`llmkit redteam run | list | report | compare-garak`."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from rich.table import Table

from ..cli.console import console
from ..cli.models import add_backend_arguments, open_model, parse_options
from ..client import ModelClient
from ..errors import EvalError

DEFAULT_GENERATORS = ("direct", "template", "base64", "rot13", "leetspeak", "multi_turn", "paraphrase")


def register(cli) -> None:
    redteam = cli.command("redteam", help="red-team a model: attack generators, guards and judges, a report")
    commands = redteam.add_subparsers(dest="redteam_command", metavar="SUBCOMMAND")
    redteam.set_defaults(func=lambda args: redteam.print_help() or 0)

    run = commands.add_parser("run", help="attack a target and write a report", description="attack a target")
    add_backend_arguments(run)
    add_backend_arguments(run, prefix="attacker")
    run.add_argument("--generators", default=",".join(DEFAULT_GENERATORS), help="comma-separated attack generators (see `llmkit redteam list`)")  # fmt: skip
    run.add_argument("--categories", help="comma-separated seed categories (default all)")
    run.add_argument("--seeds", help="seed JSONL file (default the built-in seeds)")
    run.add_argument("--guard", action="append", default=[], metavar="SPEC", help="guard scoring the transcripts, e.g. prompt_injection (repeatable)")  # fmt: skip
    run.add_argument("--max-tokens", type=int, default=96, help="new tokens per reply (default 96)")
    run.add_argument("--batch-size", type=int, default=8, help="attacks per backend call (default 8)")
    run.add_argument("--paraphrases", type=int, default=2, help="paraphrases per seed by the attacker (default 2)")
    run.add_argument("--seed", type=int, default=0, help="attacker sampling seed (default 0)")
    run.add_argument("--output", "-o", help="run directory (default runs/redteam-<timestamp>); an existing run resumes")  # fmt: skip
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=run_redteam)

    listing = commands.add_parser("list", help="list attack generators and seeds", description="list generators and seeds")  # fmt: skip
    listing.add_argument("--seeds", help="seed JSONL file (default the built-in seeds)")
    listing.set_defaults(func=list_attacks)

    report = commands.add_parser("report", help="score a run's transcripts again and rewrite its report", description="rescore and report")  # fmt: skip
    report.add_argument("run", help="llmkit redteam run directory")
    report.set_defaults(func=rescore_run)

    compare = commands.add_parser("compare-garak", help="compare a red-team report with a garak report", description="compare with garak")  # fmt: skip
    compare.add_argument("run", help="llmkit redteam run directory")
    compare.add_argument("garak_report", help="garak's report JSONL (garak.<id>.report.jsonl)")
    compare.add_argument("--output", "-o", help="markdown table (default RUN/garak_comparison.md; JSON beside it)")
    compare.set_defaults(func=compare_garak)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def run_redteam(args: argparse.Namespace) -> int:
    from llmkit.core.guards import open_guard

    from .attacks import AttackContext, load_registry, plan_attacks
    from .harness import RunSettings, load_plan, run_attacks
    from .report import write_report
    from .seeds import load_seeds

    for name in ("max_tokens", "batch_size", "paraphrases"):
        if getattr(args, name) < 1:
            raise EvalError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    registry = load_registry()
    generators = _names(args.generators)
    for name in generators:
        registry.get(name)  # unknown names fail before any model loads
    seeds = load_seeds(args.seeds)
    categories = _names(args.categories)
    if categories:
        unknown = sorted(set(categories) - {s.category for s in seeds})
        if unknown:
            raise EvalError(f"no seed has category {', '.join(unknown)}; categories: {', '.join(sorted({s.category for s in seeds}))}")  # fmt: skip
        seeds = [s for s in seeds if s.category in categories]
    guards = [open_guard(spec) for spec in args.guard]
    options = parse_options(args.backend_option)
    attacker_options = parse_options(args.attacker_backend_option)
    config = {
        "target": args.model,
        "backend": args.backend,
        "backend_options": options,
        "attacker": args.attacker_model,
        "attacker_backend": args.attacker_backend,
        "attacker_backend_options": attacker_options,
        "generators": generators,
        "seeds": [s.id for s in seeds],
        "seed_file": args.seeds,
        "guards": args.guard,
        "max_tokens": args.max_tokens,
        "paraphrases": args.paraphrases,
        "seed": args.seed,
    }
    output = Path(args.output or f"runs/redteam-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    with console.status(f"opening {args.backend} backend for {args.model}", spinner="dots"):
        backend, identity = open_model(args.backend, args.model, options, args.device)
    client = ModelClient(backend, identity, None, batch_size=args.batch_size)

    def make_plan():
        attacker = client
        if args.attacker_model is not None and "paraphrase" in generators:
            attacker_backend, attacker_identity = open_model(args.attacker_backend, args.attacker_model, attacker_options)  # fmt: skip
            attacker = ModelClient(attacker_backend, attacker_identity, None)
        with console.status("planning attacks", spinner="dots"):
            return plan_attacks(seeds, generators, registry, AttackContext(attacker, args.paraphrases, args.seed))

    attacks = load_plan(output, config, make_plan)
    records = run_attacks(attacks, client, output, guards, RunSettings(args.max_tokens, args.batch_size, args.quiet))
    summary = write_report(output, records, config)
    table = Table("category", "successes / n", "attack success", "95% Wilson CI")
    for name, s in summary["by_category"].items():
        table.add_row(name, f"{s['successes']} / {s['n']}", f"{s['rate']:.3f}", f"[{s['wilson'][0]:.3f}, {s['wilson'][1]:.3f}]")  # fmt: skip
    console.print(table)
    through = summary["got_through"]
    console.print(f"{through['successes']} of {through['n']} attacks got through; transcripts in {output / 'got_through.jsonl'}, report {output / 'report.html'}")  # fmt: skip
    return 0


def rescore_run(args: argparse.Namespace) -> int:
    """The run's transcripts judged again by the current checks and the run's guards (no model is asked)."""
    import json

    from llmkit.core.guards import open_guard

    from .harness import read_results
    from .report import write_report
    from .scoring import score_transcript

    run = Path(args.run)
    if not (run / "config.json").is_file():
        raise EvalError(f"{run} is not a red-team run directory (no config.json)")
    config = json.loads((run / "config.json").read_text())
    guards = [open_guard(spec) for spec in config.get("guards", [])]
    records = [
        {**r, **score_transcript(r["check"], r["turns"], r["replies"], guards)}
        for r in read_results(run / "results.jsonl")
    ]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = write_report(run, records, config)
    console.print(f"{summary['success']['successes']} of {summary['attacks']} attacks succeeded; report {run / 'report.html'}")  # fmt: skip
    return 0


def list_attacks(args: argparse.Namespace) -> int:
    from .attacks import load_registry
    from .seeds import load_seeds

    registry = load_registry()
    table = Table("generator", "source", "what it does")
    for name in registry.names():
        doc = (registry.get(name).__doc__ or "").strip().splitlines()
        table.add_row(name, registry.source(name), doc[0] if doc else "")
    console.print(table)
    seeds = Table("seed", "category", "check", "goal")
    for seed in load_seeds(args.seeds):
        seeds.add_row(seed.id, seed.category, seed.check["type"], seed.goal)
    console.print(seeds)
    return 0


def compare_garak(args: argparse.Namespace) -> int:
    from .garak import write_comparison

    markdown = write_comparison(Path(args.run), Path(args.garak_report), Path(args.output) if args.output else None)
    console.print(markdown.read_text())
    return 0
