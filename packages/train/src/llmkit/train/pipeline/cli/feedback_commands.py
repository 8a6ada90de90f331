"""`llmkit data critique` (SL-CAI) and `llmkit data label-preferences` (RLAIF), on any llmkit backend."""

from __future__ import annotations

import argparse

from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams

from ...errors import DataError
from ..feedback import default_constitution, load_constitution
from ..feedback.files import label_file, revise_file
from .common import print_summary


def _add_backend_arguments(parser: argparse.ArgumentParser, max_tokens: int) -> None:
    parser.add_argument("--constitution", help="YAML/JSON principles (default: llmkit's built-in three)")
    parser.add_argument("--backend", default="reference", help="backend name: reference, engine, openai, ...")
    parser.add_argument("--model", help="model for the backend (catalog name, path, or remote model id)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="more backend options")
    parser.add_argument("--max-tokens", type=int, default=max_tokens)
    parser.add_argument("--temperature", type=float, default=0.0, help="default 0 (greedy)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="draws the principle of each example")
    parser.add_argument("--quiet", action="store_true")


def register(commands) -> None:
    critique = commands.add_parser("critique", help="SL-CAI: response, critique and revision per prompt -> SFT pairs")
    critique.add_argument("prompts", help='JSONL records with a "prompt" (or user messages)')
    critique.add_argument("--output", "-o", required=True, help="revised SFT records (chat format)")
    critique.add_argument("--trace", required=True, help="every response, critique and revision (JSONL)")
    critique.add_argument("--rounds", type=int, default=1, help="critique-revision rounds (default 1)")
    _add_backend_arguments(critique, 256)
    critique.set_defaults(func=run_critique)

    label = commands.add_parser(
        "label-preferences", help="RLAIF: a judge picks the better of two responses in both orders; kept if it agrees"
    )
    label.add_argument("pairs", help='JSONL records {"prompt", "responses": [a, b]}')
    label.add_argument("--output", "-o", required=True, help="preference records (prompt, chosen, rejected)")
    label.add_argument("--trace", required=True, help="both verdicts of every item (JSONL)")
    _add_backend_arguments(label, 8)
    label.set_defaults(func=run_label)


def _backend(args: argparse.Namespace):
    options = {}
    for option in args.option:
        key, sep, value = option.partition("=")
        if not sep:
            raise DataError(f"--option {option!r}: expected KEY=VALUE")
        options[key] = value
    if args.model:
        options["model"] = args.model
    return open_backend(args.backend, **options)


def _params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)


def _constitution(args: argparse.Namespace):
    return load_constitution(args.constitution) if args.constitution else default_constitution()


def run_critique(args: argparse.Namespace) -> int:
    constitution = _constitution(args)
    summary = revise_file(
        _backend(args),
        args.prompts,
        args.output,
        args.trace,
        constitution,
        rounds=args.rounds,
        batch_size=args.batch_size,
        params=_params(args),
        seed=args.seed,
        quiet=args.quiet,
    )
    print_summary(summary)
    return 0


def run_label(args: argparse.Namespace) -> int:
    constitution = _constitution(args)
    summary = label_file(
        _backend(args),
        args.pairs,
        args.output,
        args.trace,
        constitution,
        batch_size=args.batch_size,
        params=_params(args),
        seed=args.seed,
        quiet=args.quiet,
    )
    print_summary(summary)
    return 0
