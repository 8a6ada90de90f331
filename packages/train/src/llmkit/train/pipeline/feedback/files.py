"""AI feedback over JSONL files, in batches: SFT pairs or preference pairs out, the full exchanges to a trace."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from ...errors import DataError
from ..progress import record_progress
from ..records import batched, iter_lines, parse_record, record_id
from ..storage import atomic_writer
from ..versioning.manifest import DatasetWriter, hash_dataset
from .constitution import Constitution
from .critique import critique_and_revise
from .preference_labels import PreferenceItem, label_preferences


def prompt_of(record: Mapping[str, Any], where: str) -> str:
    """A record's prompt text: `prompt` as a string, or the last user turn of `prompt`/`messages`."""
    value = record.get("prompt", record.get("messages"))
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, Mapping) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    raise DataError(f"{where}: needs a 'prompt' string or messages with a user turn")


def _numbered(path: str | Path):
    for index, (number, line) in enumerate(iter_lines(path)):
        yield index, f"{path}:{number}", parse_record(line, f"{path}:{number}")


def revise_file(
    backend: Backend,
    prompts: str | Path,
    output: str | Path,
    trace: str | Path,
    constitution: Constitution,
    *,
    rounds: int = 1,
    batch_size: int = 16,
    params: SamplingParams | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> dict[str, Any]:
    """SL-CAI over a prompts file: revised SFT records to `output` (with manifest), exchanges to `trace`."""
    config = {
        "rounds": rounds,
        "seed": seed,
        "backend": backend.name,
        "principles": [p.name for p in constitution.principles],
    }
    written = changed = 0
    with (
        DatasetWriter(output, "critique-revise", config, [hash_dataset(prompts)]) as writer,
        atomic_writer(trace) as trace_file,
        record_progress(quiet) as progress,
    ):
        task = progress.add_task("critique and revise", total=None, rate="")
        for chunk in batched(_numbered(prompts), batch_size):
            pairs = [(record_id(record, index), prompt_of(record, where)) for index, where, record in chunk]
            for example in critique_and_revise(backend, pairs, constitution, rounds, params, seed + written):
                writer.write_record(example.sft_record())
                trace_file.write(json.dumps(example.trace(), ensure_ascii=False) + "\n")
                changed += example.final != example.response
                written += 1
            progress.update(task, advance=len(chunk))
    return {"examples": written, "revised_differently": changed, "rounds": rounds}


def _preference_item(record: Mapping[str, Any], index: int, where: str) -> PreferenceItem:
    responses = record.get("responses")
    if not (isinstance(responses, list) and len(responses) == 2 and all(isinstance(r, str) for r in responses)):
        raise DataError(f"{where}: needs 'responses': a list of exactly two strings")
    if responses[0] == responses[1]:
        raise DataError(f"{where}: the two responses are identical")
    return PreferenceItem(record_id(record, index), prompt_of(record, where), (responses[0], responses[1]))


def label_file(
    backend: Backend,
    pairs: str | Path,
    output: str | Path,
    trace: str | Path,
    constitution: Constitution,
    *,
    batch_size: int = 16,
    params: SamplingParams | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> dict[str, Any]:
    """RLAIF over {"prompt", "responses": [a, b]} records: swap-consistent preference pairs to `output`."""
    config = {"seed": seed, "backend": backend.name, "principles": [p.name for p in constitution.for_preferences()]}
    counts = {"items": 0, "labelled": 0, "position_inconsistent": 0, "unparseable": 0}
    with (
        DatasetWriter(output, "rlaif", config, [hash_dataset(pairs)]) as writer,
        atomic_writer(trace) as trace_file,
        record_progress(quiet) as progress,
    ):
        task = progress.add_task("preference labels", total=None, rate="")
        for chunk in batched(_numbered(pairs), batch_size):
            items = [_preference_item(record, index, where) for index, where, record in chunk]
            for label in label_preferences(backend, items, constitution, params, seed + counts["items"]):
                counts["items"] += 1
                trace_file.write(json.dumps(label.trace()) + "\n")
                if label.consistent:
                    counts["labelled"] += 1
                    writer.write_record(label.preference_record())
                elif label.verdict_original is None or label.verdict_swapped is None:
                    counts["unparseable"] += 1
                else:
                    counts["position_inconsistent"] += 1
            progress.update(task, advance=len(chunk))
    return counts
