"""The plugin system: core registers through its own entry point, collisions fail loudly, run-time plugins."""

from __future__ import annotations

import pytest
import torch

from llmkit.core import PluginError, SamplingParams
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, registry, unregister_plugin
from llmkit.core.sampling.sampler import SamplingBatch, sample


def test_core_registers_through_its_entry_point():
    loaders = registry("model_loaders")
    assert set(loaders.names()) >= {"gguf", "hf"}
    assert loaders.owner("gguf").startswith("llmkit-core")
    assert set(registry("chat_templates").names()) >= {"chatml", "llama3"}


class ForceToken:
    """A sampler plugin that forces one token id, to see plugins used by name."""

    def validate(self, args):
        if "token" not in args:
            raise ValueError("token is required")

    def __call__(self, logits, args):
        forced = torch.full_like(logits, float("-inf"))
        for row, a in enumerate(args):
            forced[row, a["token"]] = 0.0
        return forced


class ForcePlugin:
    @hookimpl
    def llmkit_register_samplers(self, register):
        register("force", ForceToken())


@pytest.fixture
def force_plugin():
    register_plugin(ForcePlugin(), "force-plugin")
    yield
    unregister_plugin("force-plugin")


def test_runtime_sampler_plugin_is_used_by_name(force_plugin):
    params = [SamplingParams(logits_processors=[("force", {"token": 3})]), SamplingParams(temperature=0)]
    logits = torch.randn(2, 10)
    logits[1, 7] = 100
    out = sample(logits, SamplingBatch.build(params, [1, 2], [[], []], None, 10))
    assert out.token_ids.tolist() == [3, 7]
    with pytest.raises(ValueError, match="token is required"):
        SamplingParams(logits_processors=["force"])


def test_name_collision_names_both_plugins(force_plugin):
    class Clash:
        @hookimpl
        def llmkit_register_samplers(self, register):
            register("force", ForceToken())

    register_plugin(Clash(), "clash-plugin")
    try:
        with pytest.raises(PluginError, match="'force' is registered twice: by force-plugin and by clash-plugin"):
            registry("samplers")
    finally:
        unregister_plugin("clash-plugin")


def test_command_collision_names_both_plugins():
    from llmkit.core.cli import build_parser

    class Clash:
        @hookimpl
        def llmkit_register_commands(self, cli):
            cli.command("pull", help="another pull")

    register_plugin(Clash(), "clash-cli")
    try:
        with pytest.raises(PluginError, match="command 'pull' is registered twice: by llmkit-core .* and by clash-cli"):
            build_parser()
    finally:
        unregister_plugin("clash-cli")


def test_a_plugin_that_raises_is_named():
    class Broken:
        @hookimpl
        def llmkit_register_tools(self, register):
            raise RuntimeError("boom")

    register_plugin(Broken(), "broken-plugin")
    try:
        with pytest.raises(PluginError, match="broken-plugin failed in llmkit_register_tools: RuntimeError: boom"):
            registry("tools")
    finally:
        unregister_plugin("broken-plugin")


def test_unknown_registry_kind():
    with pytest.raises(PluginError, match="unknown registry kind"):
        registry("widgets")


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_work(tmp_path):
    """A broken third-party entry point must not take the CLI down with it."""
    import subprocess
    import sys
    import textwrap

    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llmkit]\nbroken = broken_plugin_module_that_does_not_exist\n")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from llmkit.core.cli import main
        sys.exit(main(["plugins"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "plugin broken-plugin (broken) failed to load and is disabled: ModuleNotFoundError" in result.stderr
    assert result.stdout.count("failed to load") == 1 and "llmkit-core" in result.stdout
