"""`llmkit agent`: tools listing, saved runs, and clear errors on bad input (no model needed)."""

from __future__ import annotations

import json
import shutil

import pytest

from llmkit.core.cli import main
from llmkit.orchestrate import CheckpointStore, ReActAgent, calculator, read_trace
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


PLAN = {"steps": [{"id": 1, "instruction": "Compute 6 * 7 with the calculator.", "tools": ["calculator"], "needs": [], "produces": ["answer"]}]}  # fmt: skip
OBJECTIVES = {"objectives": [{"id": 1, "goal": "Compute 6 * 7.", "context": "", "depends_on": [], "produces": "answer"}]}  # fmt: skip


def scripted_model(messages):
    """Plays every level: strategist, planner, operator (calculator, then final_answer), plain ReAct."""
    system = messages[0]["content"]
    if "Decompose the task" in system:
        return json.dumps(OBJECTIVES)
    if "Plan before acting" in system:
        return json.dumps(PLAN)
    results = [m for m in messages if m["role"] == "tool"]
    if not results:
        return hermes_call("calculator", {"expression": "6 * 7"})
    return hermes_call("final_answer", {"answer": "42"})


@pytest.fixture
def scripted_backend():
    """A `scripted` backend registered through the backend hook, as a plugin would."""
    from llmkit.core.hookspecs import hookimpl
    from llmkit.core.plugins import register_plugin, unregister_plugin

    class Plugin:
        @hookimpl
        def llmkit_register_backends(self, register):
            register("scripted", lambda **options: ScriptedBackend(respond=scripted_model))

    register_plugin(Plugin(), "test-scripted-backend")
    yield
    unregister_plugin("test-scripted-backend")


@pytest.mark.parametrize("mode", ["react", "plan", "hierarchical"])
def test_agent_run_in_every_mode_with_live_progress(llmkit, scripted_backend, tmp_path, mode):
    trace = tmp_path / "trace.jsonl"
    args = ["agent", "run", "What is 6 * 7?", "--tools", "calculator", "--backend", "scripted", "--mode", mode]
    code, out, err = llmkit(*args, "--tool-choice", "required", "--trace", str(trace), "--otel", "off")
    assert code == 0 and out.strip() == "42", err
    assert "→ calculator" in err and "← ok 42" in err and "answer" in err.splitlines()[-1]
    if mode != "react":
        assert "plan made" in err
    assert any(span["name"] == "tool.call" for span in read_trace(trace))


def test_agent_run_resumes_from_its_checkpoint(llmkit, scripted_backend, tmp_path):
    db = str(tmp_path / "runs.db")
    base = ["agent", "run", "What is 6 * 7?", "--tools", "calculator", "--backend", "scripted", "--tool-choice", "required"]  # fmt: skip
    code, _, _ = llmkit(*base, "--checkpoint", db, "--run-id", "cli1", "--json")
    assert code == 0
    code, out, _ = llmkit(*base, "--checkpoint", db, "--resume", "cli1", "--json")
    assert code == 0 and json.loads(out)["answer"] == "42" and json.loads(out)["run_id"] == "cli1"


def test_approval_flags(llmkit, scripted_backend):
    base = ["agent", "run", "What is 6 * 7?", "--tools", "calculator", "--backend", "scripted", "--tool-choice", "required", "--json"]  # fmt: skip
    code, out, _ = llmkit(*base, "--forbid", "calculator", "--max-steps", "2")
    log = json.loads(out)["tool_calls"]
    assert log[0]["status"] == "refused" and "calculator is forbidden for agent" in log[0]["content"]
    code, out, _ = llmkit(*base, "--require-approval", "calculator")  # stdin is no terminal: refused
    assert json.loads(out)["tool_calls"][0]["status"] == "refused"
    code, out, _ = llmkit(*base, "--require-approval", "calculator", "--yes")
    assert code == 0 and json.loads(out)["tool_calls"][0]["status"] == "ok"
    code, out, _ = llmkit(*base, "--require-approval", "calculator", "--approve-all")
    assert code == 0 and json.loads(out)["tool_calls"][0]["status"] == "ok"


def test_agent_run_uses_the_tools_of_an_mcp_server_once_allowed(llmkit, scripted_backend):
    server = f"{shutil.which('llmkit')} agent mcp-serve --tools calculator"
    args = ["agent", "run", "What is 6 * 7?", "--mcp", server, "--backend", "scripted", "--tool-choice", "required"]
    code, out, err = llmkit(*args, "--json", "--max-steps", "2")  # MCP tools need approval; stdin is no terminal
    calls = json.loads(out)["tool_calls"]
    assert calls[0]["status"] == "refused" and "nobody can give it: stdin is not a terminal" in calls[0]["content"]
    assert "llmkit: calculator needs approval and stdin is not a terminal" in err and "--approve-all" in err
    code, out, err = llmkit(*args, "--json", "--allow", "calculator")
    assert out, err
    calls = json.loads(out)["tool_calls"]
    assert code == 0 and (calls[0]["name"], calls[0]["status"], calls[0]["content"]) == ("calculator", "ok", "42")


def test_agent_run_with_python_warns_that_code_will_not_run_unattended(llmkit, scripted_backend):
    args = ["agent", "run", "What is 6 * 7?", "--tools", "calculator,python", "--backend", "scripted"]
    code, out, err = llmkit(*args, "--tool-choice", "required")
    assert code == 0 and out.strip() == "42"
    assert "llmkit: run_python needs approval and stdin is not a terminal" in err and "--allow run_python" in err
    code, out, err = llmkit(*args, "--tool-choice", "required", "--approve-all")
    assert code == 0 and "needs approval" not in err
