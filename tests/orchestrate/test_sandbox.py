"""The python tool runs model-written code in core's sandbox: escapes are stopped and the reason reported."""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path

import pytest

from llmkit.core.sandbox import sandbox_isolation
from llmkit.orchestrate import PythonToolbox, ReActAgent
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call


@pytest.fixture(scope="module")
def isolation():
    return sandbox_isolation()


def run(code: str, **limits) -> str:
    return PythonToolbox(**{"timeout_s": 3.0, **limits}).run_python.invoke({"code": code})


def test_output_comes_back_with_its_status():
    out = run("print(6 * 7)")
    assert out.splitlines() == ["status: ok", "stdout:", "42"]


def test_network_is_refused(isolation):
    if not isolation["network_namespace"]:
        pytest.skip("no network namespace on this machine (documented: network is not blocked there)")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    out = run(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    server.close()
    assert out.startswith("status: error") and "connected" not in out and not accepted
    assert "OSError" in out or "Network is unreachable" in out or "ConnectionRefused" in out


def test_writes_outside_the_working_directory_are_refused(isolation):
    if not isolation.get("read_only_filesystem"):
        pytest.skip("no mount namespace on this machine (documented: only file permissions protect other paths)")
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
        result = ReActAgent(backend, [box]).run("loop forever")
    assert result.ok and result.answer == "It ran out of time."
    (entry,) = result.tool_log
    assert entry["status"] == "ok" and "stopped: time limit of 1 s" in entry["content"]
