"""Lint a rendered context against the checklist: missing required info, critical info in the middle,
conflicting instructions, over-long context, superseded assertions left uncorrected."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from ..render import RenderedContext, message_text
from ..window import ContextWindow

_DIRECTIVE = re.compile(
    r"\b(always|must never|never|must not|must|do not|don't|should not|shouldn't|avoid|only)\s+([^.;:!?\n]{3,80})",
    re.IGNORECASE,
)
_NEGATIVE = {"never", "must never", "must not", "do not", "don't", "should not", "shouldn't", "avoid"}
_ASSERTION = re.compile(
    r"\b(?:the\s+)?([a-z][\w-]*(?:\s[a-z][\w-]*){0,3})\s+(?:is|=|:)\s+"
    r"(`[^`]+`|\"[^\"]+\"|[\w./-]*\d[\w./-]*|[A-Z][\w./-]+)",
    re.IGNORECASE,
)
_STOPWORDS = {"the", "a", "an", "to", "in", "of", "and", "or", "with", "any", "your", "you", "be", "use"}


@dataclasses.dataclass(frozen=True)
class LintFinding:
    rule: str
    severity: str  # "error" | "warning" | "info"
    message: str


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def directives(text: str) -> list[tuple[bool, str]]:
    """(is_negative, object) for each always/never/must/do-not instruction in `text`."""
    return [(m.group(1).lower() in _NEGATIVE, m.group(2).strip()) for m in _DIRECTIVE.finditer(text)]


def conflicting_instructions(texts: Sequence[str]) -> list[LintFinding]:
    found = [d for text in texts for d in directives(text)]
    findings = []
    for index, (negative, obj) in enumerate(found):
        for other_negative, other in found[index + 1 :]:
            a, b = _content_words(obj), _content_words(other)
            if negative != other_negative and a and b and len(a & b) / min(len(a), len(b)) >= 0.8:
                findings.append(
                    LintFinding(
                        "conflicting-instructions", "error", f"{obj!r} is both required and forbidden ({other!r})"
                    )
                )
    return findings


def superseded_assertions(window: ContextWindow) -> list[LintFinding]:
    """A fact asserted with one value and later another, with no correction recorded for the earlier one."""
    corrected = " ".join(c.claim.lower() for c in window.corrections)
    latest: dict[str, tuple[str, int]] = {}
    findings = []
    for item in (i for i in window.history if i.kind != "correction"):
        for key, value in ((k.lower(), v.rstrip(".-/")) for k, v in _ASSERTION.findall(item.content)):
            if key in latest and latest[key][0].lower() != value.lower():
                old, turn = latest[key]
                if old.lower() not in corrected:
                    findings.append(
                        LintFinding(
                            "uncorrected-superseded",
                            "warning",
                            f"'{key}' was {old} (turn {turn}) and is {value} (turn {item.turn}) with no correction "
                            f"marker; call window.correct({f'{key} is {old}'!r}, ...)",
                        )
                    )
            latest[key] = (value, item.turn)
    return findings


def critical_in_middle(
    rendered: RenderedContext, critical: Sequence[str], counter, long_context: int
) -> list[LintFinding]:
    """Critical texts that occur only between 25% and 75% of a long context (where models recall least)."""
    if rendered.total_tokens < long_context:
        return []
    offsets, position = [], 0
    for message in rendered.messages:
        tokens = counter.count(message_text(message))
        offsets.append((position, tokens, message_text(message)))
        position += tokens
    findings = []
    for text in critical:
        places = [(start + tokens / 2) / max(position, 1) for start, tokens, content in offsets if text in content]
        if places and all(0.25 <= p <= 0.75 for p in places):
            findings.append(
                LintFinding(
                    "critical-in-middle", "warning", f"{text[:60]!r} sits only at {places[0]:.0%} of the context"
                )
            )
    return findings


def dropped_constraints(rendered: RenderedContext, text: str) -> list[LintFinding]:
    """Protected content (a constraint's turn or its anchor line) cut for budget: an error once the wording is gone."""
    findings = []
    for dropped in (d for d in rendered.dropped if d.constraint):
        still_there = dropped.constraint in text
        where = "its wording is still anchored" if still_there else "its wording is nowhere in the context"
        findings.append(
            LintFinding(
                "constraint-dropped",
                "warning" if still_there else "error",
                f"{dropped.description} ({dropped.tokens} tokens, {dropped.zone}) was cut for budget although it "
                f"states {dropped.constraint!r}; {where}. Raise the {dropped.zone!r} zone budget or shorten it",
            )
        )
    return findings


def lint(
    window: ContextWindow,
    rendered: RenderedContext,
    *,
    required: Sequence[str] = (),
    long_context: int = 2000,
    over_long_fraction: float = 0.9,
) -> list[LintFinding]:
    """Every checklist rule over one window and its render."""
    findings: list[LintFinding] = []
    text = "\n".join(message_text(m) for m in rendered.messages)
    if not window.objective:
        findings.append(LintFinding("required-missing", "warning", "no objective set: nothing anchors the task"))
    for fact in required:
        if fact not in text:
            findings.append(LintFinding("required-missing", "error", f"required information missing: {fact!r}"))
    for constraint in window.anchored_constraints():
        if constraint not in text:
            findings.append(LintFinding("required-missing", "error", f"constraint not in the context: {constraint!r}"))
    findings += dropped_constraints(rendered, text)
    critical = [*window.anchored_constraints(), *[i.content for i in window.history if i.metadata.get("critical")]]
    findings += critical_in_middle(rendered, critical, window.counter, long_context)
    instructions = [window.system, *window.constraints, *window.reminders]
    instructions += [i.content for i in window.history if i.role == "user" and i.kind != "correction"]
    findings += conflicting_instructions(instructions)
    if rendered.total_tokens > over_long_fraction * rendered.budget:
        findings.append(
            LintFinding(
                "over-long",
                "warning",
                f"{rendered.total_tokens} tokens is over {over_long_fraction:.0%} of the {rendered.budget}-token budget",
            )
        )
    if rendered.dropped:
        findings.append(
            LintFinding("over-long", "info", f"{len(rendered.dropped)} units left out for budget (see 'dropped')")
        )
    findings += superseded_assertions(window)
    return findings
