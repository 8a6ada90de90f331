"""Tools: typed callables with JSON Schemas, toolboxes that share state, the built-ins, and their execution."""

from .calculator import calculator
from .executor import ToolExecutor
from .files import FilesToolbox
from .python_exec import PythonToolbox
from .registry import build_tool_set, describe_installed, installed_tools
from .results import ToolResult
from .sql import SqlToolbox
from .tool import Permission, Tool, tool
from .toolbox import Toolbox, ToolSet

__all__ = [
    "FilesToolbox",
    "Permission",
    "PythonToolbox",
    "SqlToolbox",
    "Tool",
    "ToolExecutor",
    "ToolResult",
    "ToolSet",
    "Toolbox",
    "build_tool_set",
    "calculator",
    "describe_installed",
    "installed_tools",
    "tool",
]
