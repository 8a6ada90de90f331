"""A third-party tool plugin whose hook raises is disabled alone: the built-in calculator keeps working (issue 25)."""

from __future__ import annotations

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import failed_plugins, register_plugin, unregister_plugin
from llmkit.orchestrate import build_tool_set


class RaisingToolPlugin:
    @hookimpl
    def llmkit_register_tools(self, register):
        raise ConnectionError("tool server unreachable")


def test_calculator_works_beside_a_tool_plugin_whose_hook_raises(capsys):
    register_plugin(RaisingToolPlugin(), "raising-tools")
    try:
        tools = build_tool_set(["calculator"])
        assert tools.get("calculator").invoke({"expression": "6*7"}) == "42"
        assert "raising-tools" in failed_plugins
        assert "plugin raising-tools failed in llmkit_register_tools and is disabled" in capsys.readouterr().err
    finally:
        unregister_plugin("raising-tools")
