"""llmkit.serve's shape: no import cycles within it, every module it imports on load installed by its own
dependencies, and every name the docs show importable from where they say."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest
from docs_api import mentions, problem
from import_graph import import_cycles, module_level_imports
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def test_no_import_cycles():
    assert import_cycles("serve") == []


def installed_by(distribution: str) -> set[str]:
    """The distribution and everything its (non-extra) requirements install, transitively, by canonical name."""
    seen, todo = set(), [canonicalize_name(distribution)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def test_every_module_imported_on_load_is_a_dependency():
    """A module-level import that only a test extra installs breaks `llmkit` for users (the plugin that
    registers the serve and router commands fails to load, and with it the engine backend)."""
    installed = installed_by("llmkit-serve")
    providers = metadata.packages_distributions()
    missing = {
        name: sorted(modules)
        for name, modules in module_level_imports("serve").items()
        if name != "llmkit"
        and name not in sys.stdlib_module_names
        and not {canonicalize_name(d) for d in providers.get(name, [])} & installed
    }
    assert missing == {}


@pytest.mark.parametrize("mention", mentions("serve"), ids=str)
def test_docs_names_import(mention):
    assert problem(mention) is None
