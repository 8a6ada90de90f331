"""`Tool`: a typed Python callable with a name, a description and a JSON Schema, validated before it runs."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ValidationError

from ..errors import ToolArgumentError, ToolDefinitionError
from .schema import arguments_model, describe_validation_error, parameters_schema, split_docstring

Permission = Literal["allowed", "requires_approval", "forbidden"]
PERMISSIONS: tuple[str, ...] = ("allowed", "requires_approval", "forbidden")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_MAX_RESULT_CHARS = 8000


def check_tool_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolDefinitionError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    return name


@dataclasses.dataclass(frozen=True)
class Tool:
    """One tool. `permission` is its default under a policy that does not name it explicitly."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    arguments: type[BaseModel] | None = None  # pydantic validation; None: validate against `parameters`
    permission: Permission = "allowed"
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS
    is_method: bool = False  # defined in a Toolbox class: bound to an instance on attribute access

    def __post_init__(self) -> None:
        check_tool_name(self.name)
        if self.permission not in PERMISSIONS:
            raise ToolDefinitionError(f"tool {self.name!r}: permission must be one of {PERMISSIONS}")
        if self.max_result_chars < 1:
            raise ToolDefinitionError(f"tool {self.name!r}: max_result_chars must be positive")
        if self.parameters.get("type", "object") != "object":
            raise ToolDefinitionError(f"tool {self.name!r}: the parameters schema must describe an object")

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        permission: Permission = "allowed",
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    ) -> Tool:
        """Name from the function, description from its docstring, schema from its type hints (pydantic)."""
        if not callable(function):
            raise ToolDefinitionError(f"a tool must be callable, got {type(function).__name__}")
        name = check_tool_name(name or getattr(function, "__name__", ""))
        parameters = list(inspect.signature(function).parameters)
        is_method = bool(parameters) and parameters[0] == "self"
        model = arguments_model(function, name, skip_first=is_method)
        doc, _ = split_docstring(function)
        text = description if description is not None else doc
        if not text:
            raise ToolDefinitionError(f"tool {name!r} needs a description: give the function a docstring")
        return cls(name, text, parameters_schema(model), function, model, permission, max_result_chars, is_method)

    def __get__(self, instance: Any, owner: type | None = None) -> Tool:
        if instance is None or not self.is_method:
            return self
        return dataclasses.replace(self, function=self.function.__get__(instance, owner), is_method=False)

    def schema(self) -> dict[str, Any]:
        """The OpenAI tool definition the chat template and the tool-call grammar take."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments to call with, or `ToolArgumentError` saying what to fix."""
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(f"arguments of {self.name} must be a JSON object")
        if self.arguments is not None:
            try:
                parsed = self.arguments.model_validate(dict(arguments))
            except ValidationError as err:
                raise ToolArgumentError(describe_validation_error(err)) from None
            return {field: getattr(parsed, field) for field in type(parsed).model_fields}
        errors = sorted(jsonschema.Draft202012Validator(self.parameters).iter_errors(dict(arguments)), key=str)
        if errors:
            problems = "; ".join(
                f"{'.'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}" for e in errors[:5]
            )
            raise ToolArgumentError(problems)
        return dict(arguments)

    def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Validate, then run."""
        return self.run(self.validate(arguments))

    def run(self, kwargs: Mapping[str, Any]) -> Any:
        """Call with validated arguments (a coroutine function runs on its own event loop in this thread)."""
        if self.is_method:
            raise ToolDefinitionError(f"tool {self.name!r} is a Toolbox method: use it through a Toolbox instance")
        value = self.function(**kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
        return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


async def _awaited(value: Any) -> Any:
    return await value


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    permission: Permission = "allowed",
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
) -> Any:
    """Decorator: `@tool` or `@tool(name=..., permission="requires_approval")` turns a typed callable into a Tool."""

    def make(fn: Callable[..., Any]) -> Tool:
        return Tool.from_function(
            fn, name=name, description=description, permission=permission, max_result_chars=max_result_chars
        )

    return make(function) if function is not None else make
