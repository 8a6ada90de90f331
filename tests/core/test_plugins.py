"""The plugin system: core registers through its own entry point, collisions fail loudly, run-time plugins."""

from __future__ import annotations

import pytest
import torch

from llmkit.core import PluginError, SamplingParams
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import failed_plugins, register_plugin, registry, unregister_plugin
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


class BrokenToolsPlugin:
    """Registers a sampler fine, then raises in its tools hook: the whole plugin must go, nothing else."""

    @hookimpl
    def llmkit_register_samplers(self, register):
        register("broken-sampler", ForceToken())

    @hookimpl
    def llmkit_register_tools(self, register):
        register("half-registered-tool", len)
        raise RuntimeError("boom")


def test_a_plugin_whose_hook_raises_is_disabled_alone(force_plugin, capsys):
    """Issue 25: one raising hook made every registry of that kind (and `llmkit plugins`) a PluginError."""

    class GoodTools:
        @hookimpl
        def llmkit_register_tools(self, register):
            register("word_count", lambda text: len(text.split()))

    register_plugin(GoodTools(), "good-tools")
    register_plugin(BrokenToolsPlugin(), "broken-plugin")
    try:
        assert "broken-sampler" in registry("samplers")  # built before the tools hook failed
        tools = registry("tools")
        assert "word_count" in tools and "half-registered-tool" not in tools
        assert tools.get("word_count")("one two three") == 3
        warning = capsys.readouterr().err
        assert "plugin broken-plugin failed in llmkit_register_tools and is disabled: RuntimeError: boom" in warning
        assert "broken-plugin" in failed_plugins and "RuntimeError: boom" in failed_plugins["broken-plugin"]
        samplers = registry("samplers")  # rebuilt without the disabled plugin
        assert "broken-sampler" not in samplers and "force" in samplers
        params = [SamplingParams(logits_processors=[("force", {"token": 3})])]
        out = sample(torch.randn(1, 10), SamplingBatch.build(params, [1], [[]], None, 10))
        assert out.token_ids.tolist() == [3]
        assert set(registry("model_loaders").names()) >= {"gguf", "hf"}
    finally:
        unregister_plugin("broken-plugin")
        unregister_plugin("good-tools")
    assert "broken-plugin" not in failed_plugins


def test_a_raising_command_hook_leaves_the_cli_working(capsys):
    from llmkit.core.cli import build_parser, main

    class BrokenCommands:
        @hookimpl
        def llmkit_register_commands(self, cli):
            cli.command("half-added", help="added before the failure")
            raise KeyError("missing config")

    register_plugin(BrokenCommands(), "broken-commands")
    try:
        _, owners = build_parser()
        assert "half-added" not in owners and owners["pull"].startswith("llmkit-core")
        assert "plugin broken-commands failed in llmkit_register_commands" in capsys.readouterr().err
        assert main(["plugins"]) == 0
        listing = capsys.readouterr().out
        assert "broken-commands" in listing and "failed, disabled" in listing and "llmkit-core" in listing
    finally:
        unregister_plugin("broken-commands")


def test_a_collision_inside_a_command_hook_stays_an_error():
    from llmkit.core.cli import build_parser

    class ClashThenMore:
        @hookimpl
        def llmkit_register_commands(self, cli):
            cli.command("plugins", help="another plugins")

    register_plugin(ClashThenMore(), "clash-then-more")
    try:
        with pytest.raises(PluginError, match="command 'plugins' is registered twice"):
            build_parser()
    finally:
        unregister_plugin("clash-then-more")


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
    assert result.stdout.count("failed, disabled") == 1 and "llmkit-core" in result.stdout


def test_llmkit_plugins_lists_an_installed_plugin_whose_hook_raises(tmp_path):
    """The installed-plugin path end to end: an entry point whose tools hook raises is listed as failed."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "raising_tools_plugin.py").write_text(
        textwrap.dedent(
            """
            from llmkit.core.hookspecs import hookimpl

            @hookimpl
            def llmkit_register_tools(register):
                raise RuntimeError("tool table corrupt")
            """
        )
    )
    dist = tmp_path / "raising_tools-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: raising-tools\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llmkit]\nraising = raising_tools_plugin\n")
    script = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from llmkit.core.cli import main; sys.exit(main(['plugins']))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "plugin raising-tools (raising) failed in llmkit_register_tools and is disabled" in result.stderr
    assert result.stdout.count("failed, disabled") == 1 and "tool table corrupt" in result.stdout
    assert "llmkit-core" in result.stdout and "gguf" in result.stdout
