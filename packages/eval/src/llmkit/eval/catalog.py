"""The built-in catalog: the benchmarks and the probe suites in one `TaskRegistry`, and `load_task`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .probes import register_probes
from .safety import register_safety
from .tasks import Task, TaskRegistry, register_benchmarks, task_from_yaml


def builtin_registry() -> TaskRegistry:
    """A registry holding every built-in task (benchmarks, probes, safety suites) and every built-in scorer type."""
    registry = TaskRegistry()
    register_benchmarks(registry)
    register_probes(registry)
    register_safety(registry)
    return registry


def all_builtin_tasks() -> dict[str, Callable[[], Task]]:
    """Benchmarks and probe suites, by name."""
    return builtin_registry().task_builders()


def builtin_task(name: str) -> Task:
    return builtin_registry().task(name)


def load_task(spec: str | Path, registry: TaskRegistry | None = None) -> Task:
    """A task by name, or from a YAML task file by path; names are looked up in `registry` (default: the built-ins)."""
    if registry is None:
        registry = builtin_registry()
    if str(spec).endswith((".yaml", ".yml")) or Path(spec).is_file():
        return task_from_yaml(spec, registry)
    return registry.task(str(spec))
