"""The datasets hook: a plugin registers loaders by name; consumers list and load them without importing it."""

from __future__ import annotations

import pytest

from llmkit.core import PluginError
from llmkit.core.cli import main
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, registry, unregister_plugin


def toy_items():
    yield {"id": "toy-0", "text": "What is the boiling point of water at sea level?"}
    yield {"id": "toy-1", "text": "Name the largest planet of the solar system."}


class ToyDatasets:
    @hookimpl
    def llmkit_register_datasets(self, register):
        register("toy-benchmark", toy_items)


@pytest.fixture
def toy_plugin():
    register_plugin(ToyDatasets(), "toy-datasets")
    yield
    unregister_plugin("toy-datasets")


def test_registered_dataset_is_found_and_loads_records(toy_plugin):
    datasets = registry("datasets")
    assert "toy-benchmark" in datasets
    assert datasets.owner("toy-benchmark") == "toy-datasets"
    records = list(datasets.get("toy-benchmark")())
    assert [r["id"] for r in records] == ["toy-0", "toy-1"]
    assert all(isinstance(r["text"], str) for r in records)


def test_dataset_name_collision_names_both_plugins(toy_plugin):
    class Clash:
        @hookimpl
        def llmkit_register_datasets(self, register):
            register("toy-benchmark", toy_items)

    register_plugin(Clash(), "clash-datasets")
    try:
        with pytest.raises(
            PluginError, match="'toy-benchmark' is registered twice: by toy-datasets and by clash-datasets"
        ):
            registry("datasets")
    finally:
        unregister_plugin("clash-datasets")


def test_llmkit_plugins_lists_datasets(toy_plugin, capsys):
    assert main(["plugins"]) == 0
    assert "toy-benchmark" in capsys.readouterr().out
