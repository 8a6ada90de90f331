"""The three checks of a good decomposition, applied to every handoff packet before it is sent:

- summary test: the handed-off task can be stated briefly (one unit of work, not a whole project);
- fresh-context test: an agent that sees only the packet can do it (no references to context it lacks);
- independence test: it does not lean on a sibling's work except through what it is explicitly given.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from llmkit.context import HandoffPacket

DEFAULT_MAX_TASK_WORDS = 60
# Phrases that point at context the receiver never saw.
_UNSEEN_CONTEXT = re.compile(
    r"\b(as (discussed|mentioned|described|shown|above|before|agreed)|the above|see above|mentioned earlier|"
    r"described earlier|from before|like before|same as before|previous (step|objective|result|answer|message)s?|"
    r"the (last|previous|earlier) (step|objective|result|answer|message)s?|(step|objective) \d+)\b",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class HandoffCheck:
    name: str  # summary, fresh_context, independence
    passed: bool
    reason: str


def summary_test(packet: HandoffPacket, max_words: int = DEFAULT_MAX_TASK_WORDS) -> HandoffCheck:
    """The task is non-empty and fits in `max_words` words."""
    words = len(packet.task.split())
    if words == 0:
        return HandoffCheck("summary", False, "the task is empty")
    if words > max_words:
        return HandoffCheck(
            "summary", False, f"the task takes {words} words; one unit of work is stated in at most {max_words}"
        )
    return HandoffCheck("summary", True, f"the task is stated in {words} words")


def fresh_context_test(packet: HandoffPacket) -> HandoffCheck:
    """Nothing in the task or its context points at conversation the receiver never saw."""
    for field in ("task", "distilled_context"):
        match = _UNSEEN_CONTEXT.search(getattr(packet, field))
        if match:
            return HandoffCheck(
                "fresh_context",
                False,
                f"the {field.replace('_', ' ')} refers to {match.group(0)!r}, which an agent with a fresh context "
                "has not seen: state it instead",
            )
    return HandoffCheck("fresh_context", True, "the packet stands on its own")


def independence_test(
    packet: HandoffPacket, sibling_outputs: Mapping[str, str] | None = None, received: Iterable[str] = ()
) -> HandoffCheck:
    """`sibling_outputs`: what sibling handoffs produce (name -> producer). The packet may mention one only
    if it receives it (an artifact, or a name in `received`)."""
    given = {name.casefold() for name in received} | {a.name.casefold() for a in packet.artifacts}
    text = f"{packet.task}\n{packet.distilled_context}".casefold()
    for name, producer in (sibling_outputs or {}).items():
        if name.casefold() in given:
            continue
        if re.search(rf"(?<![\w]){re.escape(name.casefold())}(?![\w])", text):
            return HandoffCheck(
                "independence",
                False,
                f"it uses {name!r}, which {producer} produces, without receiving it: declare the dependency or "
                "make the task independent",
            )
    return HandoffCheck("independence", True, "it depends on no sibling's work it does not receive")


def check_handoff(
    packet: HandoffPacket,
    *,
    sibling_outputs: Mapping[str, str] | None = None,
    received: Iterable[str] = (),
    max_task_words: int = DEFAULT_MAX_TASK_WORDS,
) -> list[HandoffCheck]:
    """All three checks, in order."""
    return [
        summary_test(packet, max_task_words),
        fresh_context_test(packet),
        independence_test(packet, sibling_outputs, received),
    ]


def failures(checks: Iterable[HandoffCheck]) -> list[str]:
    """The failed checks as `name: reason` lines (empty when the handoff may go)."""
    return [f"{c.name} test: {c.reason}" for c in checks if not c.passed]
