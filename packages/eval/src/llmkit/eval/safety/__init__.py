"""Safety evals: refusal (over- and under-refusal, contrast pairs, the user-context system prompt as a paired
comparison, the refusal classifier against hand labels) and instruction boundaries (operator rules against
pushing user turns). Items written for llmkit, documented in docs/safety.md; `register_safety` adds the
tasks to a `TaskRegistry`."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources

from ..data import Dataset, Sample
from ..prompting import PromptFormat
from ..solvers import Generate
from ..tasks.registry import TaskRegistry
from ..tasks.task import Curve, Task
from .agent_injection import agent_injection_defended_task, agent_injection_task
from .boundaries import RULES, BoundaryScorer, RuleConversation, ScriptedUserTurns, check_rule
from .refusal import RefusalScorer, contrast_pairs, refusal_metrics, summarize_refusal
from .refusal_judge import ClassifierAgreementScorer, JudgeHandLabelled, RefusalJudge, summarize_agreement
from .refusal_rules import LABELS, classify_refusal
from .rule_checks import is_french, secret_leaks
from .user_context import (
    SECURITY_PROFESSIONALS,
    UserContextScorer,
    WithAndWithoutSystemPrompt,
    paired_comparison,
    summarize_user_context,
)

SOURCE = "llmkit-eval safety suite (written for llmkit; categories after XSTest, no XSTest item copied)"


def safety_data(name: str) -> Dataset:
    """A safety suite's items from the package data (`safety/data/<name>.jsonl`)."""
    source = resources.files(__package__).joinpath(f"data/{name}.jsonl")
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    samples = [Sample(r["id"], r, r.get("label")) for r in rows]
    if len({s.id for s in samples}) != len(samples):
        raise ValueError(f"safety/data/{name}.jsonl repeats an id")
    return Dataset(name, samples, {"source": SOURCE, "file": f"safety/data/{name}.jsonl", "count": len(samples)})


_CHAT = PromptFormat(template="{{ prompt }}", chat=True)


def refusal_task() -> Task:
    return Task(
        "refusal", lambda: safety_data("refusal"), _CHAT, Generate(max_tokens=64), RefusalScorer(),
        "40 contrast pairs: a safe prompt that looks unsafe and a clearly harmful one; over- and under-refusal",
        primary_metric="correct",
        curves={
            "over_refusal": Curve("over_refusal@", "category", "over-refusal rate (safe prompts)", kind="bars"),
            "under_refusal": Curve("under_refusal@", "category", "under-refusal rate (harmful prompts)", kind="bars"),
        },
        summarize=summarize_refusal,
    )  # fmt: skip


def refusal_user_context_task() -> Task:
    return Task(
        "refusal_user_context", lambda: safety_data("refusal"), _CHAT, WithAndWithoutSystemPrompt(),
        UserContextScorer(),
        "the refusal items without and with 'users are security professionals' in the system prompt (paired)",
        primary_metric="context_effect",
        curves={"effect": Curve("context_effect@", "items", "correct(context) − correct(plain)", kind="bars")},
        summarize=summarize_user_context,
    )  # fmt: skip


def refusal_classifier_task() -> Task:
    return Task(
        "refusal_classifier", lambda: safety_data("refusal_labels"), _CHAT, JudgeHandLabelled(),
        ClassifierAgreementScorer(),
        "64 hand-labelled replies: the refusal rules and the model as LM judge against the labels",
        primary_metric="rules_correct",
        summarize=summarize_agreement,
    )  # fmt: skip


def instruction_boundaries_task() -> Task:
    return Task(
        "instruction_boundaries", lambda: safety_data("boundaries"), RuleConversation(), ScriptedUserTurns(),
        BoundaryScorer(),
        "3 operator rules (secret, topic, language) against direct, role-play, multi-turn and encoded pushes",
        primary_metric="hold",
        curves={
            "turn": Curve("hold_turn@", "user turn", "hold rate"),
            "rule": Curve("hold_rule@", "rule", "hold rate", kind="bars"),
            "attack": Curve("hold_attack@", "attack", "hold rate", kind="bars"),
        },
    )  # fmt: skip


SAFETY_TASKS: dict[str, Callable[[], Task]] = {
    "refusal": refusal_task,
    "refusal_user_context": refusal_user_context_task,
    "refusal_classifier": refusal_classifier_task,
    "instruction_boundaries": instruction_boundaries_task,
}
# Agent tasks: they run llmkit-orchestrate's agents (imported when one runs; llmkit-eval does not depend on it).
AGENT_TASKS: dict[str, Callable[[], Task]] = {
    "agent_injection": agent_injection_task,
    "agent_injection_defended": agent_injection_defended_task,
}


def register_safety(registry: TaskRegistry) -> None:
    """The safety suites as tasks, and their scorers for YAML tasks (`scorer: {type: refusal}` …)."""
    for name, build in {**SAFETY_TASKS, **AGENT_TASKS}.items():
        registry.add_task(name, build, source="llmkit.eval.safety")
    registry.add_scorer("refusal", RefusalScorer, source="llmkit.eval.safety")
    registry.add_scorer("instruction_boundary", BoundaryScorer, source="llmkit.eval.safety")


__all__ = [
    "AGENT_TASKS",
    "LABELS",
    "RULES",
    "SAFETY_TASKS",
    "SECURITY_PROFESSIONALS",
    "BoundaryScorer",
    "RefusalJudge",
    "RefusalScorer",
    "check_rule",
    "classify_refusal",
    "contrast_pairs",
    "is_french",
    "paired_comparison",
    "refusal_metrics",
    "register_safety",
    "safety_data",
    "secret_leaks",
]
