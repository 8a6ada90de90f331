"""The python tool runs model-written code in core's sandbox: escapes are stopped and the reason reported."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from llmkit.core.sandbox import sandbox_isolation
from llmkit.orchestrate import PythonToolbox, ReActAgent, approve_all
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call
from llmkit.orchestrate.tools import python_exec
from llmkit.orchestrate.tools.sandbox_description import weaker_run


@pytest.fixture(scope="module")
def isolation():
    return sandbox_isolation()


def require_layer(isolation, layer: str) -> None:
    """A layer this host lacks fails the test under LLMKIT_REQUIRE_SANDBOX=1 (CI), else skips it saying so."""
    if isolation.get(layer):
        return
    message = f"sandbox layer {layer!r} is not enforced on this host (see docs/security.md)"
    if os.environ.get("LLMKIT_REQUIRE_SANDBOX") == "1":
        pytest.fail(message + "; LLMKIT_REQUIRE_SANDBOX=1 requires it")
    pytest.skip(message)


def run(code: str, **limits) -> str:
    return PythonToolbox(**{"timeout_s": 3.0, **limits}).run_python.invoke({"code": code})


def test_output_comes_back_with_its_status():
    out = run("print(6 * 7)")
    assert out.splitlines() == ["status: ok", "stdout:", "42"]


def test_network_is_refused(isolation):
    require_layer(isolation, "network_namespace")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    out = run(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    server.close()
    assert out.startswith("status: error") and "connected" not in out and not accepted
    assert any(e in out for e in ("OSError", "Network is unreachable", "ConnectionRefused", "PermissionError"))


def test_writes_outside_the_working_directory_are_refused(isolation):
    require_layer(isolation, "read_only_filesystem")
    target = Path(f"/tmp/llmkit-orchestrate-escape-{uuid.uuid4().hex}")
    out = run(f"open({str(target)!r}, 'w').write('x')")
    assert out.startswith("status: error") and "Read-only file system" in out
    assert not target.exists()
    parent = run("import os\nprint(os.path.abspath('..'))\nopen('../escape.txt', 'w').write('x')")
    assert parent.startswith("status: error") and "Read-only file system" in parent
    assert not (Path(parent.splitlines()[2]) / "escape.txt").exists()


def test_fork_bomb_is_stopped_with_the_reason():
    out = run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", timeout_s=2.0, max_processes=16)  # fmt: skip
    assert out.startswith("status: timeout") and "time limit of 2 s" in out


def test_runaway_memory_is_stopped_with_the_reason():
    out = run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))", memory_mb=256, timeout_s=10.0)
    assert out.startswith("status: memory_limit") and "memory limit of 256 MB" in out


def test_runaway_cpu_is_stopped_with_the_reason():
    out = run("while True:\n    pass", timeout_s=1.0)
    assert out.startswith("status: timeout") and "time limit of 1 s" in out


def test_huge_files_are_stopped_with_the_reason():
    out = run("open('big', 'wb').write(b'x' * (8 * 2**20))", max_file_mb=1)
    assert out.startswith("status: output_limit") and "file-size limit of 1 MB" in out


def test_the_agent_sees_the_reason_and_the_run_goes_on():
    backend = ScriptedBackend([hermes_call("run_python", {"code": "while True:\n    pass"}), "It ran out of time."])
    with PythonToolbox(timeout_s=1.0) as box:
        result = ReActAgent(backend, [box], approver=approve_all).run("loop forever")
    assert result.ok and result.answer == "It ran out of time."
    (entry,) = result.tool_log
    assert entry["status"] == "ok" and "stopped: time limit of 1 s" in entry["content"]


def test_model_written_code_needs_approval_by_default(tmp_path):
    marker = tmp_path / "ran"
    backend = ScriptedBackend([hermes_call("run_python", {"code": f"open({str(marker)!r}, 'w')"}), "done"])
    with PythonToolbox() as box:
        assert box.tools()[0].permission == "requires_approval"
        result = ReActAgent(backend, [box]).run("run it")
    assert result.tool_log[0]["status"] == "refused" and not marker.exists()
    assert result.tool_log[0]["content"] == "refused: run_python needs approval and nobody can give it: this agent has no approver"  # fmt: skip


def description_on(monkeypatch, isolation) -> str:
    monkeypatch.setattr(python_exec, "host_isolation", lambda: isolation)
    (run_python,) = PythonToolbox(timeout_s=3.0, memory_mb=256).tools()
    return run_python.schema()["function"]["description"] + json.dumps(run_python.parameters)


def test_the_description_promises_no_network_only_where_a_network_namespace_holds(monkeypatch):
    without = description_on(monkeypatch, {"network_namespace": False, "read_only_filesystem": False, "uid": 0})
    assert "no network" not in without.lower() and "Not enforced on this host: the network is reachable" in without
    assert "it can write wherever the sandbox user may" in without and "at most 3 s" in without and "256 MB" in without
    held = description_on(monkeypatch, {"network_namespace": True, "read_only_filesystem": True, "uid": 65534})
    assert "no network" in held and "files outside its working directory are read-only" in held
    assert "runs as user nobody" in held and "Not enforced" not in held


def test_the_description_matches_this_host(isolation):
    with PythonToolbox() as box:
        (run_python,) = box.tools()
    assert ("no network" in run_python.description) is bool(isolation["network_namespace"])
    assert ("the network is reachable" in run_python.description) is not bool(isolation["network_namespace"])


def test_a_run_weaker_than_described_says_so():
    assert weaker_run({"network_namespace": True, "seccomp": True}, {"network_namespace": False, "seccomp": True}) == [
        "no network"
    ]
