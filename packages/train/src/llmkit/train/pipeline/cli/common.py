"""Pieces every `llmkit data` command shares: executor flags and printing a summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..execution import Executor, make_executor


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument(
        "--workers", type=int, help="local worker processes (default: the CPUs, at most 8; 1 runs inline)"
    )
    group.add_argument("--ray-address", help="run batches on Ray Data at this cluster address ('local' starts one)")
    group.add_argument("--batch-size", type=int, default=2048, help="records per batch (default 2048)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def executor_from(args: argparse.Namespace) -> Executor:
    return make_executor(args.workers, args.ray_address)


def print_summary(summary: Any) -> None:
    """The summary as indented JSON on stdout (progress and warnings go to stderr)."""
    json.dump(summary, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def split_fields(text: str | None) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip()) if text else ()
