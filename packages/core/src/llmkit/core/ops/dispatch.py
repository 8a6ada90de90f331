"""Op dispatch: the best registered implementation for a device, else the reference.

Kernels arrive through `llmkit_register_kernels(register)` as
`register(op, device, implementation, priority=0)`. `LLMKIT_KERNELS=reference` forces the
references (the specification) everywhere.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from ..errors import PluginError
from ..plugins import registrations


@dataclasses.dataclass(frozen=True)
class Kernel:
    op: str
    device: str
    implementation: Callable[..., Any]
    priority: int
    owner: str


_references: dict[str, Callable[..., Any]] = {}
_table: dict[tuple[str, str], list[Kernel]] | None = None
_registration_source: list | None = None


def register_reference(op: str, implementation: Callable[..., Any]) -> None:
    _references[op] = implementation


def kernels() -> dict[tuple[str, str], list[Kernel]]:
    """Every registered kernel by (op, device), highest priority first."""
    global _table, _registration_source
    calls = registrations("kernels")
    if _table is None or _registration_source is not calls:
        table: dict[tuple[str, str], list[Kernel]] = {}
        for call in calls:
            kernel = _kernel_from(call.owner, *call.args, **call.kwargs)
            entries = table.setdefault((kernel.op, kernel.device), [])
            clash = next((k for k in entries if k.priority == kernel.priority), None)
            if clash is not None:
                raise PluginError(
                    f"kernel {kernel.op!r} on {kernel.device} at priority {kernel.priority} is registered twice: "
                    f"by {clash.owner} and by {kernel.owner}"
                )
            entries.append(kernel)
            entries.sort(key=lambda k: -k.priority)
        _table, _registration_source = table, calls
    return _table


def _kernel_from(owner: str, op: str, device: str, implementation: Callable[..., Any], priority: int = 0) -> Kernel:
    if op not in _references:
        raise PluginError(
            f"plugin {owner} registered a kernel for unknown op {op!r}; ops: {', '.join(sorted(_references))}"
        )
    if not callable(implementation):
        raise PluginError(f"plugin {owner} registered a non-callable kernel for {op!r}")
    return Kernel(op, device, implementation, int(priority), owner)


def forced_reference() -> bool:
    return os.environ.get("LLMKIT_KERNELS", "").strip().lower() == "reference"


def implementation(op: str, device: str) -> Callable[..., Any]:
    """The implementation of `op` that runs on `device` ("cpu", "cuda", ...)."""
    if op not in _references:
        raise PluginError(f"unknown op {op!r}; ops: {', '.join(sorted(_references))}")
    if not forced_reference():
        entries = kernels().get((op, device))
        if entries:
            return entries[0].implementation
    return _references[op]


def reference(op: str) -> Callable[..., Any]:
    return _references[op]
