"""The guard protocol: a check on what goes into a model (messages) or comes out of it (text, tool arguments,
tool results) that answers with a `Verdict` — allow, block (with reason and category) or redact."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from .errors import GuardError

# Where a guard looks: the request's messages, the model's reply, a tool call's arguments (JSON text), or what a
# tool returned before the model sees it.
Stage = Literal["input", "output", "tool_arguments", "tool_result"]
STAGES: tuple[Stage, ...] = ("input", "output", "tool_arguments", "tool_result")
Action = Literal["allow", "block", "redact"]


@dataclasses.dataclass(frozen=True)
class Span:
    """A piece of the checked text a guard matched: [start, end) and what replaces it when redacting."""

    start: int
    end: int
    label: str

    @property
    def replacement(self) -> str:
        return f"[{self.label.upper()}]"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A guard's answer. `block` carries a reason and a category; `redact` carries the spans to replace
    (`redacted` gives the text with them replaced); `score` is the detector's number where it has one."""

    action: Action
    guard: str
    reason: str = ""
    category: str = ""
    spans: tuple[Span, ...] = ()
    score: float | None = None

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def redacted(self, text: str) -> str:
        return redact(text, self.spans)


def allow(guard: str, score: float | None = None) -> Verdict:
    return Verdict("allow", guard, score=score)


def redact(text: str, spans: Sequence[Span]) -> str:
    """`text` with each span replaced by its label (spans may overlap; the earlier one wins)."""
    pieces, position = [], 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start < position:
            continue
        pieces += [text[position : span.start], span.replacement]
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)


@runtime_checkable
class Guard(Protocol):
    """What serve and orchestrate run. `stages` says where the guard applies. `stream_window` is how many
    characters of streamed text a guard may still change its mind about (a regex that could still match):
    streaming holds back that many; None means the guard judges only whole texts, so a stream is held whole."""

    name: str
    stages: frozenset[Stage]
    stream_window: int | None

    def check(self, text: str, stage: Stage) -> Verdict: ...


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message: string content, or the text parts of a content list, and tool calls'
    arguments (a request can carry earlier calls)."""
    content = message.get("content")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts += [p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        if isinstance(function.get("arguments"), str):
            parts.append(function["arguments"])
    return "\n".join(parts)


def check_messages(guard: Guard, messages: Sequence[Mapping[str, Any]]) -> Verdict:
    """The first blocking verdict over the messages' texts (tool messages are checked as tool results where the
    guard watches those), else allow. Input is never redacted in place: a redacting guard's hit on input blocks."""
    for message in messages:
        stage: Stage = "tool_result" if message.get("role") == "tool" and "tool_result" in guard.stages else "input"
        if stage not in guard.stages:
            continue
        text = message_text(message)
        if not text:
            continue
        verdict = guard.check(text, stage)
        if verdict.action != "allow":
            if verdict.action == "redact":
                labels = sorted({s.label for s in verdict.spans})
                return Verdict(
                    "block", verdict.guard, f"the input contains {', '.join(labels)}", verdict.category or "pii"
                )
            return verdict
    return allow(guard.name)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Every guard's judgement of one text: the spans to redact (all guards', on the original text) and the
    first blocking verdict, if any."""

    text: str
    spans: tuple[Span, ...] = ()
    blocked: Verdict | None = None

    @property
    def redacted(self) -> str:
        return redact(self.text, self.spans)


def check_all(guards: Sequence[Guard], text: str, stage: Stage) -> Outcome:
    """Run every guard that watches `stage` over `text`, in order, stopping at the first block. Each guard sees
    the original text, so redaction spans of different guards share one coordinate system."""
    spans: list[Span] = []
    for guard in guards:
        if stage not in guard.stages:
            continue
        verdict = guard.check(text, stage)
        if verdict.blocked:
            return Outcome(text, tuple(spans), verdict)
        if verdict.action == "redact":
            spans += verdict.spans
    return Outcome(text, tuple(spans))


def parse_stages(value: str | Sequence[str] | None, default: frozenset[Stage]) -> frozenset[Stage]:
    """Stages from an option ("output+tool_result", or a list); unknown names are an error naming the known ones."""
    if value is None:
        return default
    names = value.replace(",", "+").split("+") if isinstance(value, str) else list(value)
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise GuardError(f"unknown guard stage(s) {unknown or names}; known: {', '.join(STAGES)}")
    return frozenset(names)  # type: ignore[arg-type]
