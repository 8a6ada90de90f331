"""The decision tree's interventions: each rewrites a failing case (or how it is sampled, or which model
answers) so that a change in the outcome points at one layer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .cases import FailingCase

COT_INSTRUCTION = "Think it through step by step, then give the final answer on the last line, starting with 'Answer:'."
ANSWER_MARKER = "Answer:"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the runs sample: greedy replies of `max_tokens`, chain-of-thought replies of `cot_max_tokens`,
    and `samples` draws at `temperature` for the more-samples intervention."""

    max_tokens: int = 64
    cot_max_tokens: int = 192
    samples: int = 8
    temperature: float = 0.8
    seed: int = 0


@dataclasses.dataclass
class Variant:
    """One run of one case: the messages, how many samples at what temperature, and on which model."""

    messages: list[dict[str, Any]]
    max_tokens: int
    samples: int = 1
    temperature: float = 0.0
    structured: dict[str, Any] | None = None
    answer_marker: str | None = None  # score only what follows the last marker (chain of thought)
    model: str = "default"  # or "compare"


@dataclasses.dataclass(frozen=True)
class Intervention:
    name: str
    layer: int | None  # the layer a fix by this intervention points to (None: the baseline)
    question: str  # what the run asks, for the report
    fix: str  # the suggested fix when it is the intervention that changes the outcome
    build: Callable[[FailingCase, Settings], Variant | str]  # a variant, or why it does not apply


def _without(text: str, critical: str) -> str:
    return "\n".join(line for line in text.replace(critical, "").splitlines() if line.strip()).strip()


def _strip_critical(messages: list[dict[str, Any]], critical: str) -> list[dict[str, Any]]:
    """The messages with the critical text cut out (only the messages that hold it change)."""
    return [
        {**m, "content": _without(str(m["content"]), critical)} if critical in str(m.get("content") or "") else dict(m)
        for m in messages
    ]


def _append_to_last_user(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    messages = [dict(m) for m in messages]
    if messages and messages[-1].get("role") == "user":
        messages[-1]["content"] = f"{messages[-1]['content']}\n\n{text}"
    else:
        messages.append({"role": "user", "content": text})
    return messages


def baseline(case: FailingCase, settings: Settings) -> Variant | str:
    return Variant([dict(m) for m in case.messages], settings.max_tokens)


def stripped(case: FailingCase, settings: Settings) -> Variant | str:
    alone = [{"role": "user", "content": case.task}]
    if [(m.get("role"), m.get("content")) for m in case.messages] == [("user", case.task)]:
        return "the case has no system parts to strip"
    return Variant(alone, settings.max_tokens)


def critical_first(case: FailingCase, settings: Settings) -> Variant | str:
    if case.critical is None:
        return "no critical instruction named (JSONL 'critical', or a session's anchored constraint)"
    messages = _strip_critical(case.messages, case.critical)
    if messages[0].get("role") == "system":
        head = messages[0]["content"]
        messages[0] = {**messages[0], "content": f"{case.critical}\n\n{head}" if head else case.critical}
    else:
        messages.insert(0, {"role": "system", "content": case.critical})
    return Variant(messages, settings.max_tokens)


def critical_last(case: FailingCase, settings: Settings) -> Variant | str:
    if case.critical is None:
        return "no critical instruction named (JSONL 'critical', or a session's anchored constraint)"
    return Variant(
        _append_to_last_user(_strip_critical(case.messages, case.critical), case.critical), settings.max_tokens
    )


def chain_of_thought(case: FailingCase, settings: Settings) -> Variant | str:
    messages = _append_to_last_user(case.messages, COT_INSTRUCTION)
    return Variant(messages, settings.cot_max_tokens, answer_marker=ANSWER_MARKER)


def structured(case: FailingCase, settings: Settings) -> Variant | str:
    if case.structured is None:
        return "the case names no output structure (JSONL 'choices' or 'schema')"
    return Variant([dict(m) for m in case.messages], settings.max_tokens, structured=case.structured)


def more_samples(case: FailingCase, settings: Settings) -> Variant | str:
    return Variant(
        [dict(m) for m in case.messages],
        settings.max_tokens,
        samples=settings.samples,
        temperature=settings.temperature,
    )


def compare_model(case: FailingCase, settings: Settings) -> Variant | str:
    return Variant([dict(m) for m in case.messages], settings.max_tokens, model="compare")


INTERVENTIONS = (
    Intervention("baseline", None, "does the failure reproduce (greedy, as given)?", "", baseline),
    Intervention(
        "stripped",
        1,
        "the case alone, system parts and history stripped",
        "the surrounding context misleads the model: cut what the task does not need (or, for a growing "
        "multi-turn context, bound it in the loop)",
        stripped,
    ),
    Intervention(
        "critical_first",
        1,
        "the critical instruction moved to the start",
        "the instruction is buried: state it at the start of the system prompt",
        critical_first,
    ),
    Intervention(
        "critical_last",
        1,
        "the critical instruction moved to the end",
        "the instruction is buried: restate it at the end, next to the request",
        critical_last,
    ),
    Intervention(
        "chain_of_thought",
        1,
        "asked to reason step by step, answer on the last line",
        "prompt for step-by-step reasoning before the answer",
        chain_of_thought,
    ),
    Intervention(
        "structured",
        1,
        "grammar-constrained output (the case's choices or schema)",
        "constrain the output format (response_format / a grammar)",
        structured,
    ),
    Intervention(
        "more_samples",
        4,
        "right in any of N samples at temperature T?",
        "the model can produce the answer but does not prefer it: fine-tune on these cases (SFT on verified "
        "samples, or RLVR with a verifier), or sample several and vote/verify",
        more_samples,
    ),
    Intervention(
        "compare_model",
        3,
        "the same case on the comparison model",
        "the task is past this model's capability: use the larger model (or distil it into this one)",
        compare_model,
    ),
)
INTERVENTION_NAMES = tuple(i.name for i in INTERVENTIONS)
