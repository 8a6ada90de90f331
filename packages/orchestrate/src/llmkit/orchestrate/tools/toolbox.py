"""`Toolbox`: tools that share state (a database connection, a root directory, a session) on one instance."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from ..errors import OrchestrateError, ToolDefinitionError
from .schema import arguments_model, describe_validation_error
from .tool import Tool


class Toolbox:
    """Subclass it and decorate methods with `@tool`; each instance exposes them bound to itself.

    Constructor arguments are the toolbox's options (typed; validated by `Toolbox.create`).
    """

    def tools(self) -> list[Tool]:
        """The bound tools, in definition order (base classes first)."""
        seen: dict[str, Tool] = {}
        for klass in reversed(type(self).__mro__):
            for attribute, value in vars(klass).items():
                if isinstance(value, Tool):
                    seen[attribute] = getattr(self, attribute)
        return list(seen.values())

    def close(self) -> None:
        """Release what the toolbox holds (connections, processes); the default holds nothing."""

    def __enter__(self) -> Toolbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def create(cls, options: dict[str, Any], name: str | None = None) -> Toolbox:
        """An instance from untrusted options (CLI strings): validated against the constructor's type hints."""
        label = name or cls.__name__
        model = arguments_model(cls.__init__, label, skip_first=True)
        try:
            parsed = model.model_validate(options)
        except ValidationError as err:
            raise OrchestrateError(f"options of tools {label!r}: {describe_validation_error(err)}") from None
        return cls(**{field: getattr(parsed, field) for field in model.model_fields})


ToolLike = Tool | Toolbox | Callable[..., Any]


class ToolSet:
    """Tools by name (a name given twice is an error); owns the toolboxes it was given and closes them."""

    def __init__(self, tools: Iterable[ToolLike] = ()):
        self._tools: dict[str, Tool] = {}
        self.toolboxes: list[Toolbox] = []
        for item in tools:
            self.add(item)

    def add(self, item: ToolLike) -> None:
        if isinstance(item, Toolbox):
            self.toolboxes.append(item)
            for bound in item.tools():
                self.add(bound)
            return
        found = item if isinstance(item, Tool) else Tool.from_function(item)
        if found.is_method:
            raise ToolDefinitionError(f"tool {found.name!r} is a Toolbox method: add the Toolbox instance instead")
        if found.name in self._tools:
            raise ToolDefinitionError(f"two tools are named {found.name!r}")
        self._tools[found.name] = found

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def subset(self, names: Iterable[str]) -> list[Tool]:
        """The named tools in this set's order (unknown names are an error)."""
        wanted = set(names)
        unknown = sorted(wanted - set(self._tools))
        if unknown:
            raise ToolDefinitionError(f"unknown tools {unknown}; this agent has {self.names}")
        return [t for n, t in self._tools.items() if n in wanted]

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def close(self) -> None:
        for box in self.toolboxes:
            box.close()
