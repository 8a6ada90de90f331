"""`llmkit agent`: tools listing, saved runs, and clear errors on bad input (no model needed)."""

from __future__ import annotations

import json

import pytest

from llmkit.core.cli import main
from llmkit.orchestrate import CheckpointStore, ReActAgent, calculator
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call


@pytest.fixture
def llmkit(capsys):
    """The CLI in this process (a subprocess would spend seconds importing torch per call)."""

    def run(*args: str):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_tools_lists_what_is_installed_with_schemas(llmkit):
    code, out, _ = llmkit("agent", "tools")
    assert code == 0
    for name in ("calculator", "python", "sql", "files"):
        assert name in out
    schemas = json.loads(llmkit("agent", "tools", "--schemas")[1])
    names = {s["function"]["name"] for s in schemas}
    assert {"calculator", "run_python", "read_file", "list_files"} <= names  # sql needs a database option


def test_bad_input_is_one_clear_line(llmkit):
    cases = [
        (("agent", "run", "x", "--tools", "nope"), "no tool named 'nope' is installed"),
        (("agent", "run", "x", "--tools", "sql"), "options of tools 'sql': missing required argument 'database'"),
        (("agent", "run", "x", "--tool-option", "sql=x"), "--tool-option takes TOOL.OPTION=VALUE"),
        (("agent", "run", "x", "--resume", "abc"), "--resume needs --checkpoint"),
        (("agent", "mcp-serve"), "name the tools to serve"),
    ]
    for args, message in cases:
        code, _, err = llmkit(*args)
        assert code == 2 and f"llmkit: error: {message}" in err, (args, err)
        assert "Traceback" not in err


def test_runs_lists_saved_runs(tmp_path, llmkit):
    store = CheckpointStore(tmp_path / "runs.db")
    backend = ScriptedBackend([hermes_call("calculator", {"expression": "1+1"}), "2"])
    ReActAgent(backend, [calculator], checkpoints=store).run("one plus one", run_id="run42")
    code, out, _ = llmkit("agent", "runs", str(tmp_path / "runs.db"))
    assert code == 0 and "run42" in out and "finished" in out
