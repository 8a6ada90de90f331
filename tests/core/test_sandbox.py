"""The subprocess sandbox: limits hold and common escapes are stopped."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from llmkit.core.errors import InvalidParameterError
from llmkit.core.sandbox import SandboxLimits, run_python

from .conftest import require_layer

FAST = SandboxLimits(timeout_s=3)


def _live_processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_runs_code_and_captures_output():
    result = run_python("import sys\nprint(input()[::-1])\nprint('warn', file=sys.stderr)", stdin="abc\n")
    assert result.ok and result.returncode == 0
    assert result.stdout == "cba\n" and result.stderr == "warn\n"


def test_a_failing_program_is_an_error_with_its_traceback():
    result = run_python("assert 1 + 1 == 3, 'wrong sum'")
    assert result.status == "error" and result.returncode == 1 and "AssertionError: wrong sum" in result.stderr


def test_infinite_loop_is_stopped_at_the_time_limit():
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout_s=1))
    assert result.status == "timeout" and result.duration_s < 3


def test_sleeping_program_is_stopped_by_wall_clock():
    result = run_python("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=1))
    assert result.status == "timeout" and result.duration_s < 3


def test_ten_gigabyte_allocation_is_refused():
    result = run_python("x = bytearray(10 * 2**30)\nprint('allocated')", limits=SandboxLimits(memory_mb=512))
    assert result.status == "memory_limit" and "allocated" not in result.stdout


def test_growing_allocation_is_refused():
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))"
    result = run_python(code, limits=SandboxLimits(memory_mb=512, timeout_s=10))
    assert result.status == "memory_limit"


def test_fork_bomb_is_contained_and_leaves_nothing_behind():
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = f"import os\n# {marker}\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    start = time.monotonic()
    result = run_python(code, limits=SandboxLimits(timeout_s=2, max_processes=16))
    assert result.status == "timeout" and time.monotonic() - start < 10
    time.sleep(0.2)
    assert not _live_processes_with(marker)


def test_detached_grandchild_dies_with_the_program(isolation, request):
    require_layer(isolation, "pid_namespace", request)
    marker = f"grandchild-{uuid.uuid4().hex}"
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv('/bin/sleep', ['/bin/sleep', '300', '{marker}'])\n"
        "time.sleep(0.2)\n"
    )
    assert run_python(code).ok
    time.sleep(0.2)
    assert not _live_processes_with(marker)


def test_no_network_even_to_this_machine(isolation, request):
    require_layer(isolation, "network_namespace", request)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    code = (
        f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\nprint('connected')"
    )
    result = run_python(code, limits=FAST)
    server.close()
    assert result.status == "error" and "connected" not in result.stdout and not accepted


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("LLMKIT_TEST_SECRET", "hunter2")
    result = run_python("import os\nprint(sorted(os.environ))\nprint(os.environ.get('LLMKIT_TEST_SECRET'))")
    assert result.ok and "hunter2" not in result.stdout and "LLMKIT_TEST_SECRET" not in result.stdout


def test_working_directory_is_fresh_and_removed_afterwards():
    result = run_python("import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))", files={"data/x.txt": "1"})
    workdir, listing = result.stdout.splitlines()
    assert listing == "['data', 'main.py']" and not os.path.exists(workdir)


def test_huge_output_is_cut_at_the_file_size_limit():
    result = run_python("print('x' * 10**8)", limits=SandboxLimits(max_file_mb=1, max_output_bytes=1000))
    assert result.status == "output_limit" and len(result.stdout) < 1100 and "truncated" in result.stdout


def test_writing_a_huge_file_is_refused():
    result = run_python("open('big', 'wb').write(b'0' * 50 * 2**20)", limits=SandboxLimits(max_file_mb=4))
    assert result.status == "output_limit"


def test_root_caller_runs_the_program_as_nobody(tmp_path, isolation):
    if os.geteuid() != 0:
        pytest.skip("privileges are dropped only when the caller is root")
    target = tmp_path / "outside.txt"
    result = run_python(f"import os\nprint(os.getuid())\nopen({str(target)!r}, 'w').write('x')")
    assert result.stdout.startswith("65534") and "PermissionError" in result.stderr and not target.exists()
    assert isolation["uid"] == 65534


def test_world_writable_directories_are_read_only(isolation, request):
    require_layer(isolation, "read_only_filesystem", request)
    name = f"llmkit-escape-{uuid.uuid4().hex}"
    targets = [f"/tmp/{name}", f"/dev/shm/{name}", f"/var/tmp/{name}"]
    code = (
        f"import os\nfor t in {targets!r}:\n    try:\n        open(t, 'w').write('x')\n"
        "    except OSError as e:\n        print(e)\nopen('own.txt', 'w').write('ok')\nprint(open('own.txt').read())"
    )
    result = run_python(code, limits=FAST)
    assert result.ok and result.stdout.count("Read-only file system") == 3 and result.stdout.endswith("ok\n")
    assert not any(os.path.exists(t) for t in targets)


def test_open_files_are_limited():
    code = "fs = []\nfor i in range(1000):\n    fs.append(open(f'f{i}', 'w'))"
    result = run_python(code, limits=SandboxLimits(max_open_files=32))
    assert result.status == "error" and "Too many open files" in result.stderr


def test_files_outside_the_working_directory_are_rejected():
    with pytest.raises(InvalidParameterError, match="outside the working directory"):
        run_python("", files={"../escape.py": "x"})


def test_bad_limits_are_rejected():
    with pytest.raises(InvalidParameterError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
