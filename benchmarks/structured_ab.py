"""A new schema's compile (JSON Schema -> IR -> NFA -> native tables) with this checkout's
`llmkit.core.structured` against another git revision's, in one process: both versions imported side by
side, each benchmark schema compiled by both in random order, `--rounds` times; per schema the fastest of
each version and their ratio.

    python benchmarks/structured_ab.py --before a65082c [--rounds 25] [--python-only]

Sequential runs of one version and then the other moved by up to 2x between minutes on the shared 2-core
VM (docs/structured-outputs.md), more than most changes to the compiler; interleaved in one process, both
versions meet the same machine. Both versions' NFAs go through the installed native module (`_C`), so the
native half is the same code for both: what differs is the Python half and its hand-over to the native
call. `--python-only` times IR + NFA alone.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import llmkit.core
from llmkit.core.ops import dispatch
from llmkit.core.structured import subsets
from llmkit.kernels import _C

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "packages/core/src/llmkit/core/structured"
SUITE = json.loads((Path(__file__).parent / "structured_schemas.json").read_text())


def import_revision(revision: str, into: Path):
    """`llmkit.core.structured_before`: the structured package as it was at `revision`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, PACKAGE], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as files:
        files.extractall(into, filter="data")
    (into / PACKAGE).rename(into / "structured_before")
    references = dict(dispatch._references)  # the old package registers its references under the same ops
    llmkit.core.__path__.append(str(into))
    try:
        return importlib.import_module("llmkit.core.structured_before")
    finally:
        dispatch._references.clear()
        dispatch._references.update(references)


def native_tables(nfas) -> None:
    """The native compile of either version's NFA (byte sets as ids into `nfa.masks`, or as the masks)."""
    nfa = nfas.nfa

    def int32(values) -> np.ndarray:
        return np.array(values, dtype=np.int32)

    if hasattr(nfa, "masks"):
        masks, byte_mask = nfa.masks, nfa.byte_mask
    else:
        ids: dict[int, int] = {}
        byte_mask = [ids.setdefault(mask, len(ids)) for mask in nfa.byte_mask]
        masks = list(ids)
    blob = np.frombuffer(b"".join(mask.to_bytes(32, "little") for mask in masks), dtype="<u8")
    rule_index = {name: k for k, name in enumerate(nfas.names)}
    result = _C.compile_rule_nfas(
        nfa.size, int32(nfa.eps_src), int32(nfa.eps_dst), int32(nfa.byte_src), int32(byte_mask),
        int32(nfa.byte_dst), blob, int32(nfa.call_src), int32([rule_index[r] for r in nfa.call_rule]),
        int32(nfa.call_dst), int32(nfas.entries), int32(nfas.finals), subsets.MAX_DFA_STATES,
    )  # fmt: skip
    if isinstance(result, str):
        raise RuntimeError(result)


def compiler(package, python_only: bool):
    to_grammar = importlib.import_module(f"{package.__name__}.compiler").to_grammar
    rule_nfas = importlib.import_module(f"{package.__name__}.automata").rule_nfas

    def compile_schema(schema) -> None:
        nfas = rule_nfas(to_grammar(package.StructuredOutput("json_schema", schema)))
        if not python_only:
            native_tables(nfas)

    return compile_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the git revision to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--python-only", action="store_true", help="time IR + NFA only, not the native compile")
    args = parser.parse_args()
    import llmkit.core.structured as after_package

    with tempfile.TemporaryDirectory() as scratch:
        before_package = import_revision(args.before, Path(scratch))
        versions = {
            "before": compiler(before_package, args.python_only),
            "after": compiler(after_package, args.python_only),
        }
        fastest: dict[str, dict[str, float]] = {label: {} for label in versions}
        for _ in range(args.rounds):
            for name, item in SUITE.items():
                order = list(versions.items())
                random.shuffle(order)
                for label, compile_schema in order:
                    started = time.perf_counter()
                    compile_schema(item["schema"])
                    ms = (time.perf_counter() - started) * 1e3
                    fastest[label][name] = min(ms, fastest[label].get(name, ms))
    what = "IR + NFA" if args.python_only else "IR + NFA + native tables"
    table = Table(title=f"{what}, ms: fastest of {args.rounds} interleaved rounds; before = {args.before}")
    for column in ("schema", "before", "after", "after / before"):
        table.add_column(column)
    ratios = []
    for name in SUITE:
        before, after = fastest["before"][name], fastest["after"][name]
        ratios.append(after / before)
        table.add_row(name, f"{before:.3f}", f"{after:.3f}", f"{after / before:.3f}")
    medians = [statistics.median(fastest[label].values()) for label in ("before", "after")]
    table.add_row("median", f"{medians[0]:.3f}", f"{medians[1]:.3f}", f"{statistics.median(ratios):.3f}")
    Console(width=120).print(table)
    print(f"after / before per schema: median {statistics.median(ratios):.3f}, {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
