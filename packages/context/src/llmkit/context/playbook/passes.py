"""ACE's three passes (Zhang et al. 2025): the generator answers with the playbook, the reflector diagnoses,
the curator proposes a delta. Any backend; the reflector and curator go through a structured generator."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from ..structured import StructuredGenerator
from .book import ApplyReport, Playbook
from .delta import PlaybookDelta, Reflection

_CITED = re.compile(r"\[(b-\d+)\]")


@dataclasses.dataclass
class Trajectory:
    task: str
    reply: str
    cited: list[str]  # bullet ids the reply cited


class Generator:
    """Answers a task with the playbook in its system prompt, citing the bullets it used as [b-N]."""

    def __init__(self, backend: Backend, params: SamplingParams | None = None):
        self.backend = backend
        self.params = params or SamplingParams(temperature=0.0, max_tokens=256)

    def run(self, task: str, playbook: Playbook) -> Trajectory:
        system = "Use the playbook below. When a bullet helps, cite its id in brackets, like [b-1].\n\n# Playbook\n" + (
            playbook.render() or "(empty)"
        )
        reply = self.backend.chat(
            [[{"role": "system", "content": system}, {"role": "user", "content": task}]], self.params
        )
        text = reply[0].choices[0].text
        return Trajectory(task, text, list(dict.fromkeys(_CITED.findall(text))))


class Reflector:
    """Diagnoses a trajectory against feedback and tags the bullets it cited as helpful, harmful or neutral."""

    def __init__(self, structured: StructuredGenerator):
        self.structured = structured

    def reflect(self, trajectory: Trajectory, feedback: str, playbook: Playbook) -> Reflection:
        cited = "\n".join(f"[{b}] {playbook.find(b).text}" for b in trajectory.cited if playbook.find(b) is not None)
        prompt = (
            f"Task:\n{trajectory.task}\n\nThe answer given:\n{trajectory.reply}\n\nFeedback:\n{feedback}\n\n"
            f"Playbook bullets the answer cited:\n{cited or '(none)'}\n\n"
            "Identify what went wrong (or 'none'), its root cause, and the reusable lesson; tag each cited bullet."
        )
        return self.structured.generate([{"role": "user", "content": prompt}], Reflection)


class Curator:
    """Turns a reflection into a small delta: add new lessons, refine or retire existing bullets."""

    def __init__(self, structured: StructuredGenerator):
        self.structured = structured

    def curate(self, reflection: Reflection, playbook: Playbook) -> PlaybookDelta:
        prompt = (
            f"Current playbook:\n{playbook.render() or '(empty)'}\n\n"
            f"Reflection:\nError: {reflection.error_identification}\nRoot cause: {reflection.root_cause}\n"
            f"Insight: {reflection.key_insight}\n\n"
            "Propose only the few operations needed: add a bullet for a new lesson, refine a bullet that was "
            "close but wrong, retire a bullet that was harmful. Never restate the whole playbook."
        )
        return self.structured.generate([{"role": "user", "content": prompt}], PlaybookDelta)


@dataclasses.dataclass
class AceStep:
    trajectory: Trajectory
    reflection: Reflection
    delta: PlaybookDelta
    report: ApplyReport


def ace_step(
    task: str,
    feedback: Callable[[str], str],
    playbook: Playbook,
    generator: Generator,
    reflector: Reflector,
    curator: Curator,
) -> AceStep:
    """One generate → reflect → curate round; the playbook changes only by the curator's delta."""
    trajectory = generator.run(task, playbook)
    reflection = reflector.reflect(trajectory, feedback(trajectory.reply), playbook)
    playbook.tag(reflection.bullet_tags)
    delta = curator.curate(reflection, playbook)
    return AceStep(trajectory, reflection, delta, playbook.apply(delta))
