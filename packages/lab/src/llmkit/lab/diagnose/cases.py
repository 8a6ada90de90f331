"""Failing cases for `llmkit diagnose`, from JSONL (prompt + expected), a context session file (what
`llmkit context inspect` reads, with its lint) or a saved agent run (llmkit-orchestrate's checkpoint store)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

from ..errors import LabError

MATCH_MODES = ("contains", "exact", "regex")
_JSONL_KEYS = {"id", "prompt", "messages", "system", "expected", "critical", "match", "choices", "schema"}


@dataclasses.dataclass
class ContextGrowth:
    """Prompt tokens of each model call of a multi-turn run, and how the run ended."""

    prompt_tokens: list[int]
    stop_reason: str | None = None

    @property
    def unbounded(self) -> bool:
        """Every call's prompt longer than the one before, over 3+ calls, ending at 2x the first or more
        (nothing in the loop compacts the context); or the run stopped because the context was full."""
        tokens = self.prompt_tokens
        rising = len(tokens) >= 3 and all(b > a for a, b in itertools.pairwise(tokens))
        return self.stop_reason == "context_length" or (rising and tokens[-1] >= 2 * max(tokens[0], 1))

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "stop_reason": self.stop_reason, "unbounded": self.unbounded}


@dataclasses.dataclass
class FailingCase:
    """One case the model got wrong: the conversation as sent, what was expected, and what is known of it.

    `task` is the request itself (what stays when the system parts are stripped); `critical` the instruction
    the answer depends on (moved first/last by the reorder interventions); `structured` an output constraint
    ({"kind", "source"} of `llmkit.core.structured.StructuredOutput`) for the structured-output intervention."""

    id: str
    messages: list[dict[str, Any]]
    expected: str
    task: str
    match: str = "contains"
    critical: str | None = None
    structured: dict[str, Any] | None = None
    lint: list[dict[str, str]] = dataclasses.field(default_factory=list)
    growth: ContextGrowth | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.match not in MATCH_MODES:
            raise LabError(f"case {self.id}: match must be one of {', '.join(MATCH_MODES)}, got {self.match!r}")
        if not self.messages or not self.task:
            raise LabError(f"case {self.id}: no messages or no task to diagnose")
        if self.match == "regex":
            try:
                re.compile(self.expected)
            except re.error as err:
                raise LabError(f"case {self.id}: expected is not a valid regex: {err}") from None
        if self.critical is not None and not any(self.critical in str(m.get("content") or "") for m in self.messages):
            raise LabError(f"case {self.id}: the critical instruction {self.critical!r} is in none of its messages")


def _structured_of(record: dict[str, Any], where: str) -> dict[str, Any] | None:
    if record.get("schema") is not None and record.get("choices") is not None:
        raise LabError(f"{where}: give 'schema' or 'choices', not both")
    if record.get("schema") is not None:
        return {"kind": "json_schema", "source": record["schema"]}
    if record.get("choices") is not None:
        choices = record["choices"]
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices):
            raise LabError(f"{where}: 'choices' must be a non-empty list of strings")
        return {"kind": "regex", "source": "|".join(re.escape(c) for c in choices)}
    return None


def case_from_record(record: dict[str, Any], where: str, index: int) -> FailingCase:
    """One JSONL record: `prompt` (or chat `messages`), `expected`; optional `system`, `critical`, `match`,
    `choices` or `schema`, `id`."""
    if not isinstance(record, dict):
        raise LabError(f"{where}: each line is one JSON object")
    unknown = sorted(set(record) - _JSONL_KEYS)
    if unknown:
        raise LabError(f"{where}: unknown fields {unknown}; known: {sorted(_JSONL_KEYS)}")
    if not isinstance(record.get("expected"), str) or not record["expected"]:
        raise LabError(f"{where}: 'expected' (a non-empty string) is required")
    if ("prompt" in record) == ("messages" in record):
        raise LabError(f"{where}: give exactly one of 'prompt' (a string) or 'messages' (a chat)")
    if "prompt" in record:
        messages = [{"role": "user", "content": str(record["prompt"])}]
        if record.get("system"):
            messages.insert(0, {"role": "system", "content": str(record["system"])})
    else:
        messages = [dict(m) for m in record["messages"]]
        if record.get("system"):
            raise LabError(f"{where}: with 'messages', put the system prompt in them")
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    if not users:
        raise LabError(f"{where}: no user message")
    return FailingCase(
        id=str(record.get("id", index)),
        messages=messages,
        expected=record["expected"],
        task=users[-1],
        match=record.get("match", "contains"),
        critical=record.get("critical"),
        structured=_structured_of(record, where),
        source=where,
    )


def load_jsonl_cases(path: str | Path) -> list[FailingCase]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise LabError(f"cannot read {path}: {err.strerror}") from None
    cases = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise LabError(f"{path}:{number} is not JSON: {err.msg}") from None
        cases.append(case_from_record(record, f"{path}:{number}", len(cases)))
    if not cases:
        raise LabError(f"{path} holds no cases")
    return cases


def load_session_case(
    path: str | Path, counter, expected: str, match: str = "contains", required: tuple[str, ...] = ()
) -> FailingCase:
    """A context session file rendered as `llmkit context inspect` renders it, with its lint findings; the
    critical instruction is the first anchored constraint (or history item marked critical)."""
    from llmkit.context import ContextError, lint, load_session

    try:
        window, current = load_session(path, counter)
        rendered = window.render(current)
    except ContextError as err:
        raise LabError(f"{path}: {err}") from None
    findings = lint(window, rendered, required=list(required))
    critical = [*window.anchored_constraints(), *[i.content for i in window.history if i.metadata.get("critical")]]
    text = "\n".join(str(m.get("content") or "") for m in rendered.messages)
    users = [str(m.get("content") or "") for m in rendered.messages if m.get("role") == "user"]
    return FailingCase(
        id=Path(path).stem,
        messages=[dict(m) for m in rendered.messages],
        expected=expected,
        task=current or window.objective or (users[-1] if users else ""),
        match=match,
        critical=next((c for c in critical if c in text), None),
        lint=[dataclasses.asdict(f) for f in findings],
        growth=ContextGrowth([rendered.total_tokens]),  # one snapshot: its size, never a growth trend
        source=str(path),
    )


def load_agent_run_case(path: str | Path, run_id: str | None, expected: str, match: str = "contains") -> FailingCase:
    """The last model call of a saved ReAct run, re-rendered from its transcript as that call saw it, and the
    prompt tokens of every call (differences of the saved cumulative usage, one model call per step)."""
    from llmkit.orchestrate import CheckpointStore
    from llmkit.orchestrate.errors import CheckpointError
    from llmkit.orchestrate.memory import AgentMemory

    if not Path(path).is_file():
        raise LabError(f"{path}: no such checkpoint store")
    store = CheckpointStore(path)
    try:
        runs = store.runs()
        if run_id is None:
            if len(runs) != 1:
                names = ", ".join(r.run_id for r in runs)
                raise LabError(f"{path} holds {len(runs)} runs; choose one with --run-id ({names})")
            run_id = runs[0].run_id
        history = store.history(run_id)
        if not history:
            raise LabError(f"run {run_id} in {path} has no saved step")
        _, last = history[-1]
        if "memory" not in last:
            raise LabError(f"run {run_id} is a {store.record(run_id).kind} run; diagnose reads ReAct transcripts")
        memory = AgentMemory.from_dict(last["memory"])
    except CheckpointError as err:
        raise LabError(str(err)) from None
    finally:
        store.close()
    tokens, calls, before = [], 0, (0, 0)
    for _, state in history:
        usage = state["usage"]
        if usage["model_calls"] > calls:
            tokens.append((usage["prompt_tokens"] - before[0]) // (usage["model_calls"] - before[1]))
            calls, before = usage["model_calls"], (usage["prompt_tokens"], usage["model_calls"])
    last_call = max(int(last.get("steps", 0)), 1)
    memory.entries = [e for e in memory.entries if e.step < last_call]  # the transcript as the last call saw it
    return FailingCase(
        id=run_id,
        messages=memory.render(last_call),
        expected=expected,
        task=memory.task,
        match=match,
        growth=ContextGrowth(tokens, last.get("stop_reason")),
        source=f"{path}#{run_id}",
    )
