"""Prompt variants as paired comparisons: one task, several prompt formats (instruction wording, chain-of-thought
variants, example sets), every variant on the same items, each compared with the first (the baseline) item by
item — paired bootstrap CI of the difference, McNemar's test, and the items that flipped (`compare.compare_task`).

A variant is a name and the `PromptFormat` fields it changes; each runs into `<output>/<name>/` like `eval run`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .client import ModelClient
from .compare import compare_task, regression_markdown
from .errors import EvalError
from .prompting import PromptFormat
from .results import load_samples
from .runner import RunOptions, run_tasks
from .tasks import Task

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a variant's name is a directory name


@dataclasses.dataclass(frozen=True)
class PromptVariant:
    name: str
    changes: Mapping[str, Any]  # PromptFormat fields and their values for this variant

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise EvalError(f"variant name {self.name!r} must be letters, digits, '_', '.', '-' (it names a directory)")
        known = {f.name for f in dataclasses.fields(PromptFormat)}
        unknown = sorted(set(self.changes) - known)
        if unknown:
            raise EvalError(f"variant {self.name!r} changes unknown prompt field(s) {unknown}; known: {sorted(known)}")

    def apply(self, task: Task) -> Task:
        """The task with this variant's prompt format (same dataset, solver and scorer)."""
        return dataclasses.replace(task, prompt=dataclasses.replace(task.prompt, **self.changes))


def parse_variants(spec: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[PromptVariant]:
    """{name: {field: value}} (in order, the first is the baseline) or [{"name": ..., field: value}, ...]."""
    if isinstance(spec, Mapping):
        spec = spec.get("variants", spec)
    if isinstance(spec, Mapping):
        entries = [(name, changes or {}) for name, changes in spec.items()]
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        entries = []
        for entry in spec:
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise EvalError(f"a variant in a list is a mapping with a 'name', got {entry!r}")
            entries.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
    else:
        raise EvalError("variants are a mapping {name: {prompt field: value}} or a list of {name: ..., ...}")
    for name, changes in entries:
        if not isinstance(changes, Mapping):
            raise EvalError(f"variant {name!r}: expected a mapping of prompt fields, got {changes!r}")
    variants = [PromptVariant(str(name), dict(changes)) for name, changes in entries]
    if len(variants) < 2:
        raise EvalError(
            f"a paired comparison needs at least two variants (the first is the baseline), got {len(variants)}"
        )
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise EvalError(f"variant names repeat: {names}")
    return variants


def load_variants(path: str | Path) -> list[PromptVariant]:
    """Variants from a YAML or JSON file (see `parse_variants`)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise EvalError(f"cannot read variants file {str(path)!r}: {err}") from None
    try:
        return parse_variants(data)
    except EvalError as err:
        raise EvalError(f"{path}: {err}") from None


def evaluate_variants(
    task: Task,
    variants: Sequence[PromptVariant],
    client: ModelClient,
    output: str | Path,
    run_info: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Run `task` once per variant on the same items, compare each variant with the first on the task's primary
    metric, and write `<output>/variants.json` and `<output>/variants.md`. Returns the JSON's content."""
    if len(variants) < 2:
        raise EvalError("a paired comparison needs at least two variants (the first is the baseline)")
    output, options = Path(output), options or RunOptions(quiet=True)
    runs: dict[str, dict[str, Any]] = {}
    for variant in variants:
        info = {**(run_info or {}), "variant": variant.name, "variant_changes": dict(variant.changes)}
        results = run_tasks([variant.apply(task)], client, output / variant.name, info, options)
        runs[variant.name] = results["tasks"][task.name]
    baseline = variants[0].name
    comparisons = {}
    for variant in variants[1:]:
        comparison = compare_task(output / baseline, output / variant.name, task.name, task.primary_metric)
        prompts = {r["id"]: r.get("prompt", "") for r in load_samples(output / variant.name, task.name)}
        for flip in comparison.get("improvements", []) + comparison.get("regressions", []):
            flip["prompt_b"] = _excerpt(prompts.get(flip["id"], ""))  # `prompt` is the baseline's
        comparisons[variant.name] = comparison
    report = {
        "task": task.name,
        "metric": task.primary_metric,
        "baseline": baseline,
        "variants": {
            v.name: {"changes": dict(v.changes), "estimate": runs[v.name]["metrics"].get(task.primary_metric)}
            for v in variants
        },
        "comparisons": comparisons,
    }
    (output / "variants.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    (output / "variants.md").write_text(variants_markdown(report, output))
    return report


def variants_markdown(report: Mapping[str, Any], output: str | Path = "") -> str:
    """Each variant against the baseline: the regression report's table and its flipped items."""
    parts = [f"# Prompt variants: {report['task']} ({report['metric']}), baseline {report['baseline']}\n"]
    for name, comparison in report["comparisons"].items():
        body = regression_markdown(
            {
                "run_a": f"{output}/{report['baseline']}",
                "run_b": f"{output}/{name}",
                "tasks": {report["task"]: comparison},
            }
        )
        parts.append(
            body.replace("# Regression report:", f"## {name} vs {report['baseline']}:", 1).replace("\n## ", "\n### ")
        )
    return "\n".join(parts)


def _excerpt(prompt: Any, limit: int = 160) -> str:
    text = " ".join((prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
