"""A typed callable's parameters as a pydantic model (validation) and a JSON Schema (what the model sees)."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import ToolDefinitionError

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SCHEMA_MAPS = ("properties", "$defs", "definitions")


def split_docstring(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a docstring with an optional Google-style Args section."""
    doc = inspect.getdoc(function) or ""
    description, params, current, in_args = [], {}, None, False
    for line in doc.splitlines():
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if in_args:
            match = _ARG_LINE.match(line)
            if match:
                current = match.group(1).lstrip("*")
                params[current] = match.group(2).strip()
            elif line.strip() and current and line.startswith((" ", "\t")):
                params[current] += " " + line.strip()
            elif line.strip():
                in_args = False
                description.append(line)
            continue
        description.append(line)
    return "\n".join(description).strip(), params


def arguments_model(function: Callable[..., Any], name: str, skip_first: bool = False) -> type[BaseModel]:
    """A pydantic model of the callable's parameters (extra arguments are errors, defaults kept)."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as err:  # an unresolvable forward reference, for instance
        raise ToolDefinitionError(f"tool {name!r}: cannot read its type hints: {err}") from None
    _, documented = split_docstring(function)
    fields: dict[str, Any] = {}
    parameters = list(inspect.signature(function).parameters.values())
    for parameter in parameters[1:] if skip_first else parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {name!r}: *args and **kwargs cannot be described to a model")
        if parameter.name not in hints:
            raise ToolDefinitionError(f"tool {name!r}: parameter {parameter.name!r} has no type hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        info = Field(default, description=documented.get(parameter.name)) if parameter.name in documented else default
        fields[parameter.name] = (hints[parameter.name], info)
    model_name = "".join(part.title() for part in re.split(r"\W+|_", name) if part) + "Arguments"
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)


def strip_titles(schema: Any) -> Any:
    """The schema without pydantic's generated `title` annotations (shorter prompts, same constraints)."""
    if isinstance(schema, list):
        return [strip_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_titles(sub) for name, sub in value.items()}
        else:
            out[key] = strip_titles(value)
    return out


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = strip_titles(model.model_json_schema())
    schema.setdefault("properties", {})
    return schema


def describe_validation_error(err: ValidationError) -> str:
    """A pydantic error as one line a model can act on: each bad argument and what is wrong with it."""
    problems = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            problems.append(f"unexpected argument {where!r}")
        elif error["type"] == "missing":
            problems.append(f"missing required argument {where!r}")
        else:
            problems.append(f"argument {where!r}: {error['msg']}")
    return "; ".join(problems)
