"""Precision and recall of each built-in guard on its labelled set, and latency per request (one guard check of
one item: median and p95).

    python benchmarks/guards.py [--skip-lm] [--lm-backend reference] [--lm-model NAME] [--threads 2]

Sets (packages/core/src/llmkit/core/guards/data/, every item written for llmkit): pii.jsonl (text that holds an
email, phone, card, IBAN or API key, or not), schema.jsonl (a schema name and a model output that violates it,
or not), prompt_injection.jsonl (tool-result-like text with or without injected instructions; the rules were
adjusted after looking at it) and prompt_injection_heldout.jsonl (written after that, never tuned on),
lm_policy.jsonl (requests that break the default policy, or not) judged by `lm_policy` on the default model.
A positive is an item the guard should flag (block or redact). The table lands in docs/safety.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from llmkit.core.guards import open_guard
from llmkit.core.guards.lm_policy import LMPolicyGuard

DATA = Path(__file__).resolve().parents[1] / "packages/core/src/llmkit/core/guards/data"


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def measure(label: str, items: list[tuple[object, str, bool]], stage: str) -> dict:
    """items: (guard, text, should_flag)."""
    tp = fp = fn = tn = 0
    seconds = []
    misses = []
    for n, (guard, text, positive) in enumerate(items, 1):
        if n % 2 == 0:
            print(f"{label}: {n}/{len(items)}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        verdict = guard.check(text, stage)
        seconds.append(time.perf_counter() - started)
        flagged = verdict.action != "allow"
        tp += flagged and positive
        fp += flagged and not positive
        fn += positive and not flagged
        tn += not flagged and not positive
        if flagged != positive:
            misses.append(("FP" if flagged else "FN", text[:90], verdict.reason))
    ms = sorted(s * 1000 for s in seconds)
    return {
        "guard": label,
        "items": len(items),
        "positives": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "median_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
        "misses": misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-lm", action="store_true", help="leave out lm_policy (it runs a model)")
    parser.add_argument("--lm-backend", default="reference")
    parser.add_argument("--lm-model", default=None, help="default: the backend's default model")
    parser.add_argument("--lm-only", action="store_true", help="only lm_policy")
    parser.add_argument("--lm-items", type=int, default=None, help="the first N of each label (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    if args.lm_only:
        args.skip_lm = False
    pii = open_guard("pii")
    if not args.lm_only:
        rows.append(measure("pii", [(pii, r["text"], r["label"]) for r in read("pii.jsonl")], "output"))

    schema_rows = read("schema.jsonl")
    schemas = schema_rows[0]["schemas"]
    guards = {name: open_guard({"name": "schema", "schema": s}) for name, s in schemas.items()}
    if not args.lm_only:
        rows.append(
            measure("schema", [(guards[r["schema"]], r["text"], r["label"]) for r in schema_rows[1:]], "output")
        )

    injection = open_guard("prompt_injection")
    for name, label in (
        []
        if args.lm_only
        else (
            ("prompt_injection.jsonl", "prompt_injection"),
            ("prompt_injection_heldout.jsonl", "prompt_injection (held out)"),
        )
    ):
        rows.append(measure(label, [(injection, r["text"], r["label"]) for r in read(name)], "tool_result"))

    if not args.skip_lm:
        options = {"backend": args.lm_backend} | ({"model": args.lm_model} if args.lm_model else {})
        lm = open_guard({"name": "lm_policy", **options})
        assert isinstance(lm, LMPolicyGuard)
        items = read("lm_policy.jsonl")
        if args.lm_items is not None:
            items = [r for r in items if r["label"]][: args.lm_items] + [r for r in items if not r["label"]][
                : args.lm_items
            ]
        rows.append(measure("lm_policy", [(lm, r["text"], r["label"]) for r in items], "input"))

    table = Table(title="guards on their labelled sets")
    for column in ("guard", "items (pos)", "precision", "recall", "median ms", "p95 ms"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["guard"],
            f"{row['items']} ({row['positives']})",
            f"{row['precision']:.2f}",
            f"{row['recall']:.2f}",
            f"{row['median_ms']:.3f}",
            f"{row['p95_ms']:.3f}",
        )
    console = Console()
    console.print(table)
    if args.show_misses:
        for row in rows:
            for kind, text, reason in row["misses"]:
                console.print(f"{row['guard']} {kind}: {text!r} ({reason})", markup=False)


if __name__ == "__main__":
    main()
