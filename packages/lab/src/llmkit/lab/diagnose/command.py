"""`llmkit diagnose INPUT`: failing cases from JSONL, a context session file or a saved agent run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import LabError

SQLITE_HEADER = b"SQLite format 3\x00"


def register_diagnose(cli) -> None:
    from llmkit.eval.cli.models import add_backend_arguments

    parser = cli.command(
        "diagnose",
        help="which layer failing cases live in (prompt/context, system design, capability, training), by real runs",
    )
    parser.add_argument(
        "input", metavar="INPUT", help="cases.jsonl (prompt + expected), a context session .json, or a checkpoint .db"
    )
    parser.add_argument("--kind", choices=("jsonl", "session", "agent-run"), help="what INPUT is (default: guessed)")
    parser.add_argument("--expected", help="the right answer (session files and agent runs; JSONL has its own)")
    parser.add_argument(
        "--match", choices=("contains", "exact", "regex"), default="contains", help="how replies are scored"
    )
    parser.add_argument("--run-id", help="which run of the checkpoint store (default: its only run)")
    parser.add_argument("--require", action="append", default=[], help="text the context must hold (session lint)")
    add_backend_arguments(parser)
    add_backend_arguments(parser, prefix="compare")
    parser.add_argument("--samples", type=int, default=8, help="samples of the more-samples intervention (default 8)")
    parser.add_argument("--temperature", type=float, default=0.8, help="their temperature (default 0.8)")
    parser.add_argument("--max-tokens", type=int, default=64, help="reply length (chain of thought: 3x)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="conversations per backend call")
    parser.add_argument("--output", "-o", default="diagnosis.json", help="the JSON report (default diagnosis.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=diagnose_command)


def input_kind(path: Path) -> str:
    if not path.is_file():
        raise LabError(f"{path}: no such file")
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
            return "agent-run"
    return "jsonl" if path.suffix == ".jsonl" else "session"


def load_cases(args: argparse.Namespace, backend):
    from .cases import load_agent_run_case, load_jsonl_cases, load_session_case

    path = Path(args.input)
    kind = args.kind or input_kind(path)
    if kind == "jsonl":
        if args.expected:
            raise LabError("--expected is for session files and agent runs; JSONL cases carry their own 'expected'")
        return load_jsonl_cases(path)
    if not args.expected:
        raise LabError(f"{path} ({kind}) holds no expected answer: give it with --expected")
    if kind == "agent-run":
        return [load_agent_run_case(path, args.run_id, args.expected, args.match)]
    from llmkit.context import TokenCounter

    return [load_session_case(path, TokenCounter.for_backend(backend), args.expected, args.match, tuple(args.require))]


def diagnose_command(args: argparse.Namespace) -> int:
    from llmkit.eval.cli.models import open_model, parse_options

    from .interventions import Settings
    from .report import diagnose, print_report

    if args.samples < 1 or args.max_tokens < 1 or args.temperature <= 0:
        raise LabError("--samples and --max-tokens must be positive, --temperature above 0")
    backend, _ = open_model(args.backend, args.model, parse_options(args.backend_option), args.device)
    compare = None
    if args.compare_model:
        compare, _ = open_model(
            args.compare_backend, args.compare_model, parse_options(args.compare_backend_option), args.device
        )
    cases = load_cases(args, backend)
    settings = Settings(args.max_tokens, 3 * args.max_tokens, args.samples, args.temperature, args.seed)
    report = diagnose(
        cases,
        backend,
        compare,
        settings,
        model=args.model,
        compare_model=args.compare_model,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print_report(report)
    Path(args.output).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"report: {args.output}")
    return 0
