"""Running every intervention on every case on the backends, and scoring the replies."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from llmkit.core.sampling import SamplingParams

from .cases import FailingCase
from .interventions import INTERVENTIONS, Intervention, Settings, Variant


@dataclasses.dataclass
class Outcome:
    """One intervention on one case: right in `passes` of `samples` replies, or skipped (and why)."""

    passes: int = 0
    samples: int = 0
    replies: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.passes > 0

    def to_dict(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {"passed": self.passed, "passes": self.passes, "samples": self.samples, "replies": self.replies}


def answer_text(text: str, marker: str | None) -> str:
    """What is scored: the text after the last `marker` when there is one (chain of thought), else all of it."""
    if marker and marker.lower() in text.lower():
        return text[text.lower().rindex(marker.lower()) + len(marker) :]
    return text


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def is_right(text: str, case: FailingCase, marker: str | None = None) -> bool:
    """contains (default): the expected text, case and spacing aside; exact: nothing else (trimmed);
    regex: the pattern found anywhere."""
    text = answer_text(text, marker)
    if case.match == "regex":
        return re.search(case.expected, text) is not None
    if case.match == "exact":
        return _normalize(text).strip(" .") == _normalize(case.expected).strip(" .")
    return _normalize(case.expected) in _normalize(text)


def _structured_output(spec: dict[str, Any]):
    from llmkit.core.structured import StructuredOutput

    return StructuredOutput(spec["kind"], spec["source"])


def _run_batch(backend, cases: Sequence[FailingCase], variants: Sequence[Variant], seed: int) -> list[Outcome]:
    params = [
        SamplingParams(max_tokens=v.max_tokens, temperature=v.temperature, n=v.samples, seed=seed) for v in variants
    ]
    conversations = [v.messages for v in variants]
    if any(v.structured is not None for v in variants):
        structured = [_structured_output(v.structured) for v in variants]
        results = backend.chat(conversations, params, structured=structured)
    else:
        results = backend.chat(conversations, params)
    outcomes = []
    for case, variant, result in zip(cases, variants, results, strict=True):
        texts = [choice.text for choice in result.choices]
        passes = sum(is_right(text, case, variant.answer_marker) for text in texts)
        outcomes.append(Outcome(passes, len(texts), texts))
    return outcomes


def _skip_reason(intervention: Intervention, variant: Variant, backends: dict[str, Any]) -> str | None:
    backend = backends.get(variant.model)
    if backend is None:
        return "no comparison model configured (--compare-model)"
    if variant.structured is not None and not getattr(backend, "supports_structured", False):
        return f"the {backend.name} backend cannot constrain decoding (use --backend engine)"
    return None


def run_interventions(
    cases: Sequence[FailingCase],
    backend,
    compare_backend=None,
    settings: Settings = Settings(),
    *,
    interventions: Sequence[Intervention] = INTERVENTIONS,
    batch_size: int = 8,
    progress: bool = True,
) -> list[dict[str, Outcome]]:
    """For each case, every intervention's outcome (skipped ones say why); one rich bar over all runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    backends = {"default": backend, "compare": compare_backend}
    results: list[dict[str, Outcome]] = [{} for _ in cases]
    plan: dict[str, list[tuple[int, Variant]]] = {}
    for index, case in enumerate(cases):
        for intervention in interventions:
            variant = intervention.build(case, settings)
            reason = variant if isinstance(variant, str) else _skip_reason(intervention, variant, backends)
            if reason is not None:
                results[index][intervention.name] = Outcome(skipped=reason)
            else:
                plan.setdefault(intervention.name, []).append((index, variant))
    total = sum(len(runs) for runs in plan.values())
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("diagnose", total=total)
        for name, runs in plan.items():
            bar.update(task, description=f"diagnose: {name}")
            for start in range(0, len(runs), batch_size):
                chunk = runs[start : start + batch_size]
                model = backends[chunk[0][1].model]
                outcomes = _run_batch(model, [cases[i] for i, _ in chunk], [v for _, v in chunk], settings.seed)
                for (index, _), outcome in zip(chunk, outcomes, strict=True):
                    results[index][name] = outcome
                bar.advance(task, len(chunk))
    return [{i.name: outcomes[i.name] for i in interventions} for outcomes in results]  # in the tree's order
