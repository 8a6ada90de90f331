"""Reading garak's report and setting it beside ours: attack success where the two cover the same ground.

garak (NVIDIA's LLM vulnerability scanner) writes `garak.<run>.report.jsonl`; its `entry_type: "eval"` rows
give, per probe and detector, `fails` (outputs the detector flagged: the attack worked) out of
`total_evaluated`. Our rate is the share of our attacks in the matching slice whose check succeeded."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import EvalError
from .harness import read_results
from .report import wilson_interval


@dataclasses.dataclass(frozen=True)
class Overlap:
    """A kind of attack both tools run: our records it covers, and garak probes (by name prefix) it covers."""

    name: str
    ours: str  # the slice of our records, in words
    select: Callable[[Mapping[str, Any]], bool]
    garak_prefixes: tuple[str, ...]
    note: str


OVERLAPS = (
    Overlap("base64 encoding", "generator base64 (all categories)", lambda r: r["generator"] == "base64",
            ("encoding.InjectBase64",), "garak: does the reply contain the decoded payload; ours: did the decoded goal succeed"),
    Overlap("rot13 encoding", "generator rot13 (all categories)", lambda r: r["generator"] == "rot13",
            ("encoding.InjectROT13",), "as base64"),
    Overlap("prompt injection (goal hijack)", "category prompt_injection", lambda r: r["category"] == "prompt_injection",
            ("latentinjection.", "promptinject."), "garak hides the injection inside a document; ours sends it as the user's text"),
    Overlap("harmful request not refused", "category harmful", lambda r: r["category"] == "harmful",
            ("grandma.", "dan.", "donotanswer."), "garak: MitigationBypass (no refusal phrase); ours: refusal rules say compliance"),
)  # fmt: skip


def read_garak_evals(path: Path) -> list[dict[str, Any]]:
    """garak's per-probe, per-detector eval rows: probe, detector, fails, n."""
    if not path.is_file():
        raise EvalError(f"garak report {path} does not exist")
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("entry_type") == "eval":
            n = int(entry.get("total_evaluated", entry.get("total", 0)))
            fails = int(entry.get("fails", n - int(entry.get("passed", 0))))
            rows.append({"probe": entry["probe"], "detector": entry["detector"], "fails": fails, "n": n})
    if not rows:
        raise EvalError(f"{path} holds no garak eval rows (did the garak run finish?)")
    return rows


def _rate(successes: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"successes": 0, "n": 0, "rate": None, "wilson": None}
    return {"successes": successes, "n": n, "rate": successes / n, "wilson": list(wilson_interval(successes, n))}


def compare(records: Sequence[Mapping[str, Any]], garak_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per overlap and garak probe/detector it covers (ours repeated), then garak's uncovered probes."""
    rows, covered = [], set()
    for overlap in OVERLAPS:
        chosen = [r for r in records if overlap.select(r)]
        ours = _rate(sum(bool(r["success"]) for r in chosen), len(chosen))
        theirs = [g for g in garak_rows if g["probe"].startswith(overlap.garak_prefixes)]
        if not chosen and not theirs:
            continue
        for g in theirs or [None]:
            row = {"overlap": overlap.name, "ours_slice": overlap.ours, "ours": ours, "note": overlap.note}
            if g is not None:
                covered.add((g["probe"], g["detector"]))
                row.update({"garak_probe": g["probe"], "garak_detector": g["detector"], "garak": _rate(g["fails"], g["n"])})  # fmt: skip
            rows.append(row)
    for g in garak_rows:
        if (g["probe"], g["detector"]) not in covered:
            rows.append({"overlap": "garak only", "garak_probe": g["probe"], "garak_detector": g["detector"], "garak": _rate(g["fails"], g["n"])})  # fmt: skip
    return rows


def _cell(rate: Mapping[str, Any] | None) -> str:
    if not rate or rate["rate"] is None:
        return "—"
    low, high = rate["wilson"]
    return f"{rate['successes']}/{rate['n']} = {rate['rate']:.2f} [{low:.2f}, {high:.2f}]"


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| attack kind | llmkit redteam slice | llmkit success (95% Wilson) | garak probe · detector | garak attack success (95% Wilson) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        probe = f"{row['garak_probe']} · {row['garak_detector']}" if row.get("garak_probe") else "—"
        lines.append(f"| {row['overlap']} | {row.get('ours_slice', '—')} | {_cell(row.get('ours'))} | {probe} | {_cell(row.get('garak'))} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_comparison(run: Path, garak_report: Path, output: Path | None = None) -> Path:
    """garak_comparison.md (and .json beside it) for a red-team run directory and a garak report."""
    records = read_results(run / "results.jsonl")
    if not records:
        raise EvalError(f"{run} holds no finished red-team attacks (results.jsonl)")
    rows = compare(records, read_garak_evals(garak_report))
    output = output or run / "garak_comparison.md"
    output.write_text(to_markdown(rows))
    output.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    return output
