"""Running attacks against a target: conversations in batches, each finished attack appended to results.jsonl.

A run directory holds `config.json` (what was asked), `attacks.jsonl` (the plan, paraphrases included, so a
resumed run sends the same attacks) and `results.jsonl` (one transcript and verdict per finished attack).
Starting again on the same directory skips the attacks already in results.jsonl."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from llmkit.core.guards import Guard
from llmkit.core.sampling import SamplingParams

from ..client import ModelClient
from ..errors import EvalError
from .attacks import Attack
from .scoring import score_transcript


@dataclasses.dataclass(frozen=True)
class RunSettings:
    max_tokens: int = 96
    batch_size: int = 8
    quiet: bool = False


def conversation(attack: Attack, turns_done: int, replies: Sequence[str]) -> list[dict[str, str]]:
    """The messages for the next user turn: system prompt, earlier turns with the target's replies, the turn."""
    messages = [{"role": "system", "content": attack.system}] if attack.system else []
    for turn, reply in zip(attack.turns[:turns_done], replies, strict=True):
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
    messages.append({"role": "user", "content": attack.turns[turns_done]})
    return messages


def load_plan(directory: Path, config: dict[str, Any], make_plan: Callable[[], list[Attack]]) -> list[Attack]:
    """The run's attacks: read back when the directory already holds a run of the same config, else planned
    and written. A directory holding a run with another config is an error (start a new directory)."""
    config_path, plan_path = directory / "config.json", directory / "attacks.jsonl"
    if config_path.is_file() and plan_path.is_file():
        saved = json.loads(config_path.read_text())
        if saved != config:
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise EvalError(f"{directory} holds a red-team run with other settings ({', '.join(changed)}); use a new --output")  # fmt: skip
        return [Attack.from_dict(json.loads(line)) for line in plan_path.read_text().splitlines() if line.strip()]
    directory.mkdir(parents=True, exist_ok=True)
    attacks = make_plan()
    plan_path.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in attacks))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    return attacks


def read_results(path: Path) -> list[dict[str, Any]]:
    """The finished attacks of results.jsonl; a last line cut short by a kill is dropped from the file."""
    if not path.is_file():
        return []
    records, good_bytes = [], 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                if raw.endswith(b"\n"):
                    raise EvalError(f"{path} has a line that is not JSON in the middle: {raw[:80]!r}") from None
                break
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return records


def run_attacks(
    attacks: Sequence[Attack],
    client: ModelClient,
    directory: Path,
    guards: Sequence[Guard] = (),
    settings: RunSettings = RunSettings(),
) -> list[dict[str, Any]]:
    """Send every attack not yet in `directory/results.jsonl`, score it, append it; all records in plan order."""
    results_path = directory / "results.jsonl"
    done = {r["id"]: r for r in read_results(results_path)}
    pending = [a for a in attacks if a.id not in done]
    params = SamplingParams(temperature=0.0, max_tokens=settings.max_tokens, seed=0)
    columns = (TextColumn("redteam"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=settings.quiet) as progress, results_path.open("a") as out:
        bar = progress.add_task("attacks", total=len(attacks), completed=len(done))
        for start in range(0, len(pending), settings.batch_size):
            chunk = pending[start : start + settings.batch_size]
            replies: dict[str, list[str]] = {a.id: [] for a in chunk}
            finish: dict[str, list[str]] = {a.id: [] for a in chunk}
            for turn in range(max(len(a.turns) for a in chunk)):
                active = [a for a in chunk if len(a.turns) > turn]
                answers = client.chat([conversation(a, turn, replies[a.id]) for a in active], [params] * len(active))
                for attack, (answer,) in zip(active, answers, strict=True):
                    replies[attack.id].append(answer.content)
                    finish[attack.id].append(answer.finish_reason)
            for attack in chunk:
                record = {
                    **attack.to_dict(),
                    "replies": replies[attack.id],
                    "finish_reasons": finish[attack.id],
                    **score_transcript(attack.check, attack.turns, replies[attack.id], guards),
                }
                out.write(json.dumps(record) + "\n")
                done[attack.id] = record
            out.flush()
            progress.advance(bar, len(chunk))
    return [done[a.id] for a in attacks]
