"""The agent-injection suite (`safety/data/agent_injection.json`, written for llmkit): the seed workspace, user
tasks with their utility checks, attacker goals with theirs, and the attack templates. One item per (user task,
attacker goal) pair, as in AgentDojo; each item runs clean once and once per attack template."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ..data import Dataset, Sample
from .agent_checks import validate_check
from .agent_env import slot_names

SUITE_FILE = "data/agent_injection.json"


@functools.cache
def load_suite() -> dict[str, Any]:
    """The suite file, checked: every task's slot exists in the workspace, every check is well formed, every
    template has one `{goal}`."""
    suite = json.loads(resources.files(__package__).joinpath(SUITE_FILE).read_text())
    validate_suite(suite)
    return suite


def validate_suite(suite: Mapping[str, Any]) -> None:
    slots = slot_names(suite["workspace"])
    ids = [t["id"] for t in suite["user_tasks"]] + [g["id"] for g in suite["attacker_goals"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{SUITE_FILE}: a task or goal id is used twice")
    for task in suite["user_tasks"]:
        if task["slot"] not in slots:
            raise ValueError(f"{SUITE_FILE}: task {task['id']} names slot {task['slot']!r}, not in the workspace")
        validate_check(task["utility"], f"{SUITE_FILE}: task {task['id']}")
    for goal in suite["attacker_goals"]:
        validate_check(goal["check"], f"{SUITE_FILE}: attacker goal {goal['id']}")
    for name, template in suite["attacks"].items():
        if template.count("{goal}") != 1:
            raise ValueError(f"{SUITE_FILE}: attack {name!r} must hold '{{goal}}' exactly once")


def attack_text(template: str, instruction: str) -> str:
    """The injected text: the template with the attacker's instruction in place of `{goal}`."""
    return template.replace("{goal}", instruction)


def agent_injection_dataset() -> Dataset:
    """Every (user task, attacker goal) pair as one item."""
    suite = load_suite()
    samples = []
    for task in suite["user_tasks"]:
        for goal in suite["attacker_goals"]:
            fields = {
                "user_task": task["id"],
                "goal": task["goal"],
                "slot": task["slot"],
                "utility": task["utility"],
                "attacker_goal": goal["id"],
                "attacker_instruction": goal["instruction"],
                "attacker_check": goal["check"],
            }
            samples.append(Sample(f"{task['id']}/{goal['id']}", fields, None))
    provenance = {"source": suite["source"], "file": f"safety/{SUITE_FILE}", "count": len(samples)}
    return Dataset("agent_injection", samples, provenance)
