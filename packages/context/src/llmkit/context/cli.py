"""`llmkit context inspect` (zones, tokens, prefix hash, lint) and `llmkit context log` (per-call records)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 200)


def register(cli) -> None:
    context = cli.command("context", help="context engineering: inspect a context window, read a context log")
    sub = context.add_subparsers(dest="context_command", metavar="SUBCOMMAND", required=True)
    inspect = sub.add_parser("inspect", help="zones, token counts, prefix hash and lint findings of a session file")
    inspect.add_argument("session", help="a session JSON file (see docs/context.md, or save_session())")
    inspect.add_argument(
        "--model", "-m", default=None, help="tokenizer and chat template of this model (default smollm2)"
    )
    inspect.add_argument("--budget", type=int, help="override the session's token budget")
    inspect.add_argument("--require", action="append", default=[], help="text that must be in the context (repeatable)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    inspect.add_argument("--messages", action="store_true", help="also print the rendered messages")
    inspect.set_defaults(func=run_inspect)
    log = sub.add_parser("log", help="print a context log (JSONL written by ContextLog) as a table")
    log.add_argument("path")
    log.set_defaults(func=run_log)


def _counter(model: str | None):
    from llmkit.core.chat_template import ChatTemplate
    from llmkit.core.models.pretrained import load_checkpoint
    from llmkit.core.models.store import DEFAULT_MODEL, resolve

    from .tokens import TokenCounter

    with console.status(f"loading the tokenizer of {model or DEFAULT_MODEL}", spinner="dots"):
        checkpoint = load_checkpoint(resolve(model or DEFAULT_MODEL))
    tokenizer = checkpoint.tokenizer
    template = (
        ChatTemplate(checkpoint.chat_template, bos_token=tokenizer.bos_token, eos_token=tokenizer.eos_token)
        if checkpoint.chat_template
        else None
    )
    return TokenCounter(tokenizer, chat_template=template, context_length=checkpoint.config.max_position_embeddings)


def run_inspect(args: argparse.Namespace) -> int:
    from .diagnostics.lint import lint
    from .render import message_text
    from .session_file import load_session

    window, current = load_session(args.session, _counter(args.model))
    if args.budget is not None:
        window.budget = args.budget
    rendered = window.render(current)
    findings = lint(window, rendered, required=args.require)
    if args.json:
        record = rendered.log_record()
        record["lint"] = [f.__dict__ for f in findings]
        record["decisions"] = [d.__dict__ for d in rendered.decisions]
        print(json.dumps(record, indent=1))
        return 0
    table = Table("zone", "priority", "budget", "tokens", "hash", title=f"{args.session}")
    for name, spec in window.zones.items():
        table.add_row(
            name, str(spec.priority), str(spec.budget), str(rendered.zone_tokens[name]), rendered.zone_hashes[name][:12]
        )
    table.add_row("overhead", "", "", str(rendered.zone_tokens["overhead"]), "")
    console.print(table)
    console.print(f"total {rendered.total_tokens} / budget {rendered.budget} tokens, {len(rendered.messages)} messages")
    console.print(f"prefix hash {rendered.prefix_hash} ({rendered.static_messages} static message(s))")
    for decision in rendered.decisions:
        console.print(f"[dim]turn {decision.turn}[/dim] {decision.policy}: {decision.action} — {decision.reason}")
    for dropped in rendered.dropped:
        console.print(
            f"[yellow]dropped[/yellow] {dropped.zone}: {dropped.description} ({dropped.tokens} tokens) — {dropped.reason}"
        )
    colors = {"error": "red", "warning": "yellow", "info": "cyan"}
    for finding in findings:
        console.print(f"[{colors[finding.severity]}]{finding.severity}[/] {finding.rule}: {finding.message}")
    if not findings:
        console.print("[green]no lint findings[/green]")
    if args.messages:
        for message in rendered.messages:
            console.rule(message["role"])
            console.print(message_text(message, image_mark="[image]\n"), markup=False, highlight=False)
    return 1 if any(f.severity == "error" for f in findings) else 0


def run_log(args: argparse.Namespace) -> int:
    from .diagnostics.log import ContextLog

    entries = ContextLog(args.path).read()
    zones = list(dict.fromkeys(z for e in entries for z in e.get("zone_tokens", {})))
    table = Table("#", "label", "prefix hash", "total", *zones)
    for number, entry in enumerate(entries, 1):
        counts = entry.get("zone_tokens", {})
        table.add_row(
            str(number), entry.get("label", ""), entry["prefix_hash"][:12], str(entry["total_tokens"]),
            *(str(counts.get(z, "")) for z in zones),
        )  # fmt: skip
    console.print(table)
    return 0
