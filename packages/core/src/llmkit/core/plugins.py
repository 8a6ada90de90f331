"""The plugin manager and the registries built from plugins' `register` callbacks."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
from collections.abc import Iterator
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "llmkit"

# Registry kind -> hook that fills it.
HOOKS = {
    "samplers": "llmkit_register_samplers",
    "verifiers": "llmkit_register_verifiers",
    "tools": "llmkit_register_tools",
    "kernels": "llmkit_register_kernels",
    "model_loaders": "llmkit_register_model_loaders",
    "backends": "llmkit_register_backends",
    "chat_templates": "llmkit_register_chat_templates",
    "datasets": "llmkit_register_datasets",
    "guards": "llmkit_register_guards",
    "escalation_rules": "llmkit_register_escalation_rules",
    "fewshot_selectors": "llmkit_register_fewshot_selectors",
    "agents": "llmkit_register_agents",
}

_manager: pluggy.PluginManager | None = None
_registries: dict[str, Registry] = {}
_registrations: dict[str, list[Registration]] = {}
_distributions: dict[str, str] = {}  # entry-point name -> distribution name
failed_plugins: dict[str, str] = {}  # entry-point name -> why it did not load


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, with every installed `llmkit` entry point loaded.

    A plugin that fails to import is reported on stderr (and by `llmkit plugins`) and left
    out; the others keep working. A plugin whose hook raises later is treated the same way
    (`disable_plugin`).
    """
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager("llmkit")
        manager.add_hookspecs(hookspecs)
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
                continue
            dist = entry_point.dist.name if entry_point.dist else "?"
            try:
                manager.register(entry_point.load(), name=entry_point.name)
            except Exception as err:
                failed_plugins[entry_point.name] = f"{dist}: {type(err).__name__}: {err}"
                print(
                    f"llmkit: warning: plugin {dist} ({entry_point.name}) failed to load and is disabled: "
                    f"{type(err).__name__}: {err}",
                    file=sys.stderr,
                )
                continue
            _distributions[entry_point.name] = dist
        _manager = manager
    return _manager


def plugin_owner(plugin_name: str) -> str:
    """A human name for a registered plugin: its distribution and entry point when installed."""
    plugin_manager()
    dist = _distributions.get(plugin_name)
    return f"{dist} ({plugin_name})" if dist else plugin_name


def disable_plugin(plugin_name: str, hook_name: str, err: BaseException) -> None:
    """Take a plugin whose hook raised out of every registry, with a warning naming it, as a failed import is.

    What it registered through other hooks goes too: registries are rebuilt on next use without it.
    """
    owner = plugin_owner(plugin_name)
    failed_plugins[plugin_name] = f"{owner}: {hook_name} raised {type(err).__name__}: {err}"
    print(
        f"llmkit: warning: plugin {owner} failed in {hook_name} and is disabled: {type(err).__name__}: {err}",
        file=sys.stderr,
    )
    plugin_manager().unregister(name=plugin_name)
    _registries.clear()
    _registrations.clear()


def register_plugin(plugin: object, name: str) -> None:
    """Add a plugin object at run time (tests, notebooks); registries are rebuilt on next use."""
    plugin_manager().register(plugin, name=name)
    failed_plugins.pop(name, None)
    _registries.clear()
    _registrations.clear()


def unregister_plugin(name: str) -> None:
    """Remove a run-time plugin (or forget that it failed and was disabled)."""
    if plugin_manager().get_plugin(name) is not None:
        plugin_manager().unregister(name=name)
    failed_plugins.pop(name, None)
    _registries.clear()
    _registrations.clear()


@dataclasses.dataclass(frozen=True)
class Registration:
    """One call a plugin made to its `register` callback."""

    owner: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def registrations(kind: str) -> list[Registration]:
    """Every register(...) call made for `kind`, in plugin order.

    A plugin whose hook raises is disabled (`disable_plugin`) and none of its calls count; the
    other plugins' registrations stand.
    """
    if kind not in _registrations:
        hook = getattr(plugin_manager().hook, HOOKS[kind])
        calls: list[Registration] = []
        for impl in hook.get_hookimpls():  # registration order
            owner = plugin_owner(impl.plugin_name)
            made: list[Registration] = []

            def register(*args: Any, _owner: str = owner, _made: list = made, **kwargs: Any) -> None:
                _made.append(Registration(_owner, args, kwargs))

            try:
                impl.function(register)
            except Exception as err:
                disable_plugin(impl.plugin_name, HOOKS[kind], err)
                continue
            calls.extend(made)
        _registrations[kind] = calls
    return _registrations[kind]


class Registry:
    """Named objects of one kind; a name claimed twice is an error naming both plugins."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, tuple[Any, str]] = {}

    def add(self, name: str, value: Any, owner: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {owner} registered a {self.kind} entry with an invalid name {name!r}")
        if name in self._entries:
            raise PluginError(
                f"{self.kind} name {name!r} is registered twice: by {self._entries[name][1]} and by {owner}"
            )
        self._entries[name] = (value, owner)

    def get(self, name: str) -> Any:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise PluginError(f"no {self.kind} entry named {name!r} is installed (installed: {known})")
        return self._entries[name][0]

    def owner(self, name: str) -> str:
        self.get(name)
        return self._entries[name][1]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return ((name, value) for name, (value, _) in self._entries.items())


def registry(kind: str) -> Registry:
    """The registry of `kind` ("samplers", "model_loaders", ...), built from every installed plugin."""
    if kind not in HOOKS:
        raise PluginError(f"unknown registry kind {kind!r}; known: {', '.join(HOOKS)}")
    if kind not in _registries:
        reg = Registry(kind)
        for call in registrations(kind):
            name, value = _name_and_value(kind, call)
            reg.add(name, value, call.owner)
        _registries[kind] = reg
    return _registries[kind]


def _name_and_value(kind: str, call: Registration) -> tuple[str, Any]:
    try:
        (name, value), extra = call.args[:2], call.args[2:]
    except ValueError:
        raise PluginError(
            f"plugin {call.owner} called register{call.args} for {kind}; expected (name, value)"
        ) from None
    if extra or call.kwargs:
        raise PluginError(f"plugin {call.owner} passed unexpected arguments to register for {kind}")
    return name, value
