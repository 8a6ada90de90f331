"""Tasks: dataset + prompt format + solver + scorer, as Python objects or YAML files."""

from .builtin import BUILTIN_TASKS, all_builtin_tasks, builtin_task
from .task import Task, load_task
from .yaml_task import task_from_yaml

__all__ = ["BUILTIN_TASKS", "Task", "all_builtin_tasks", "builtin_task", "load_task", "task_from_yaml"]
