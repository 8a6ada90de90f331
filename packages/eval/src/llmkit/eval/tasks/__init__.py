"""Tasks: the `Task` type, the registry tasks are found in by name, the benchmarks, and YAML task files.

`llmkit.eval.catalog` puts the benchmarks and the probe suites into one registry and loads tasks from it.
"""

from .builtin import BUILTIN_TASKS, register_benchmarks
from .registry import TaskRegistry
from .task import Curve, Task
from .yaml_task import task_from_yaml

__all__ = ["BUILTIN_TASKS", "Curve", "Task", "TaskRegistry", "register_benchmarks", "task_from_yaml"]
