"""The sandbox escape suite: every attempt is contained, bounded in time, and harms nothing on the host.

Each test names the layer it relies on (`require_layer`): missing layers are listed loudly at the end of
the run, and fail under LLMKIT_REQUIRE_SANDBOX=1. docs/security.md maps each attempt to its layer.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from llmkit.core.sandbox import SandboxLimits, run_python

from .conftest import require_layer

PROJECT = Path(__file__).resolve().parents[2]
CLONE_SYSCALL = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
CLONE3_SYSCALL = 435


def _run(code: str, **limits) -> object:
    start = time.monotonic()
    result = run_python(code, limits=SandboxLimits(**{"timeout_s": 10, **limits}))
    assert time.monotonic() - start < 30, "an escape attempt must be bounded in time"
    return result


@pytest.fixture
def readable_secret():
    """A world-readable file in a world-searchable directory outside the work dir: only confinement hides it."""
    directory = Path(tempfile.mkdtemp(prefix="llmkit-escape-"))
    directory.chmod(0o755)
    secret = directory / "secret.txt"
    secret.write_text(f"secret-{uuid.uuid4().hex}")
    secret.chmod(0o644)
    yield secret
    shutil.rmtree(directory)


def test_udp_to_this_machine_does_not_arrive(isolation, request):
    require_layer(isolation, "network_namespace", request)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(1.5)
    port = server.getsockname()[1]
    code = f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'escaped', ('127.0.0.1', {port}))"
    _run(code)
    with pytest.raises(TimeoutError):
        server.recvfrom(100)
    server.close()


def test_fork_bomb_is_capped_at_the_process_budget():
    code = (
        "import os, time\ncount = 0\n"
        "for _ in range(500):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
        "    count += 1\n"
        "print(count)\n"
    )
    result = _run(code, max_processes=16)
    assert result.ok, result.stderr
    assert 0 < int(result.stdout) < 16


def test_memory_across_processes_stays_within_one_budget(isolation, request):
    require_layer(isolation, "memory_budget", request)
    # four processes of 200 MB each (each under the 256 MB per-process limit) against a 256 + 64 MB budget
    code = (
        "import os, time\nkids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = b'x' * (200 * 2**20)\n"
        "        time.sleep(2)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "survivors = sum(os.waitpid(pid, 0)[1] == 0 for pid in kids)\n"
        "print(survivors)\n"
    )
    result = _run(code, memory_mb=256, max_disk_mb=64)
    assert result.ok, result.stderr
    assert int(result.stdout) <= 1  # two at once would hold 400 MB


def test_the_memory_budget_stops_the_program_as_a_memory_limit(isolation, request):
    """Two children hold 60 MB each, then the program itself takes 200 MB: under its own limit, over the
    budget they share. The OOM killer takes the largest process, the program, which ends as a memory limit.
    (When every process took the same 200 MB, which one the killer took was chance, and a program whose
    children alone were killed ends "ok", as it should.)"""
    require_layer(isolation, "memory_budget", request)
    code = (
        "import os, time\n"
        "for _ in range(2):\n"
        "    if os.fork() == 0:\n"
        "        block = b'x' * (60 * 2**20)\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "time.sleep(0.5)\n"
        "block = b'x' * (200 * 2**20)\n"
        "time.sleep(1)\n"
    )
    result = _run(code, memory_mb=256, max_disk_mb=16)
    assert result.status == "memory_limit", (result.status, result.stderr)


def test_disk_fill_stops_at_the_disk_budget(isolation, request):
    require_layer(isolation, "disk_budget", request)
    code = (
        "written = 0\n"
        "try:\n"
        "    for i in range(1000):\n"
        "        with open(f'fill{i}', 'wb') as f:\n"
        "            f.write(b'x' * 2**20)\n"
        "        written += 1\n"
        "except OSError as err:\n"
        "    print(err.strerror)\n"
        "print(written)\n"
    )
    result = _run(code, max_disk_mb=8, max_file_mb=4)
    reason, written = result.stdout.splitlines()
    assert reason == "No space left on device" and int(written) <= 8


@pytest.mark.skipif(CLONE_SYSCALL is None, reason=f"no clone syscall number for {platform.machine()}")
def test_nested_namespaces_are_refused(isolation, request):
    require_layer(isolation, "seccomp", request)
    code = (
        "import ctypes, os, subprocess\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "print('unshare', libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))\n"
        "print('unshare-net', libc.unshare(0x40000000), os.strerror(ctypes.get_errno()))\n"
        f"print('clone', libc.syscall({CLONE_SYSCALL}, 0x10000000 | 17, 0, 0, 0, 0), os.strerror(ctypes.get_errno()))\n"
        f"print('clone3', libc.syscall({CLONE3_SYSCALL}, 0, 0), os.strerror(ctypes.get_errno()))\n"
        "print('setns', libc.setns(0, 0), os.strerror(ctypes.get_errno()))\n"
        "tool = subprocess.run(['unshare', '-U', 'true'], capture_output=True, text=True)\n"
        "print('unshare-U', tool.returncode)\n"
        "print('fork-still-works', subprocess.run(['true']).returncode)\n"
    )
    result = _run(code)
    lines = result.stdout.splitlines()
    assert result.ok, result.stderr
    assert lines[:5] == [
        "unshare -1 Operation not permitted",
        "unshare-net -1 Operation not permitted",
        "clone -1 Operation not permitted",
        "clone3 -1 Function not implemented",
        "setns -1 Operation not permitted",
    ]
    assert lines[5] != "unshare-U 0" and lines[6] == "fork-still-works 0"


def test_ptrace_and_mount_are_refused(isolation, request):
    require_layer(isolation, "seccomp", request)
    code = (
        "import ctypes, os, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "child = os.fork()\n"
        "if child == 0:\n    time.sleep(5)\n    os._exit(0)\n"
        "print('attach', libc.ptrace(16, child, 0, 0), os.strerror(ctypes.get_errno()))\n"
        "print('traceme', libc.ptrace(0, 0, 0, 0), os.strerror(ctypes.get_errno()))\n"
        "print('mount', libc.mount(b'none', b'.', b'tmpfs', 0, None), os.strerror(ctypes.get_errno()))\n"
        "os.kill(child, 9)\n"
    )
    result = _run(code)
    assert result.stdout.splitlines() == [
        "attach -1 Operation not permitted",
        "traceme -1 Operation not permitted",
        "mount -1 Operation not permitted",
    ]


def test_nothing_outside_the_work_dir_is_readable(isolation, request, readable_secret):
    require_layer(isolation, "file_confinement", request)
    targets = [str(readable_secret), str(PROJECT / "pyproject.toml"), str(PROJECT), os.path.expanduser("~")]
    targets += ["/proc/1/environ", "/proc/self/environ", tempfile.gettempdir()]
    code = (
        "import os\n"
        f"for target in {targets!r}:\n"
        "    try:\n"
        "        print(target, 'READ', os.listdir(target) if os.path.isdir(target) else open(target).read()[:40])\n"
        "    except OSError as err:\n"
        "        print(target, err.strerror)\n"
        "print(open('/usr/lib/os-release').read()[:4] or open('/etc/os-release').read()[:4])\n"
    )
    result = _run(code)
    assert result.ok, result.stderr
    lines = result.stdout.splitlines()
    assert not any("READ" in line for line in lines), lines
    assert readable_secret.read_text() not in result.stdout


def test_symlinks_to_outside_files_do_not_open_and_are_not_followed_afterwards(isolation, request, readable_secret):
    require_layer(isolation, "file_confinement", request)
    code = (
        "import os, threading, time\n"
        f"secret = {str(readable_secret)!r}\n"
        "os.symlink(secret, 'link')\n"
        "try:\n    print(open('link').read())\nexcept OSError as err:\n    print('link', err.strerror)\n"
        "# swap a regular file for a symlink while another thread keeps opening it (each state held a moment,\n"
        "# so that the reader meets both: without the pauses a fast CPU let it see only the symlink)\n"
        "stop = False\n"
        "def swap():\n"
        "    while not stop:\n"
        "        with open('swap.tmp', 'w') as f:\n            f.write('harmless')\n"
        "        os.replace('swap.tmp', 'swap')\n"
        "        time.sleep(0.0002)\n"
        "        os.symlink(secret, 'swap.lnk')\n"
        "        os.replace('swap.lnk', 'swap')\n"
        "        time.sleep(0.0002)\n"
        "thread = threading.Thread(target=swap)\nthread.start()\n"
        "seen = set()\n"
        "for _ in range(20000):\n"
        "    try:\n        seen.add(open('swap').read())\n    except OSError as err:\n        seen.add(err.strerror)\n"
        "    if 'harmless' in seen and 'Permission denied' in seen:\n        break\n"
        "stop = True\nthread.join()\n"
        "print(sorted(seen))\n"
        "os.symlink(secret, 'host-link')\n"
    )
    result = _run(code)
    assert result.ok, result.stderr
    assert readable_secret.read_text() not in result.stdout
    assert result.stdout.startswith("link Permission denied") and "harmless" in result.stdout
    assert readable_secret.exists()  # cleaning the work dir did not follow the symlinks left in it


def test_writes_outside_the_work_dir_fail_even_where_permissions_allow(isolation, request, readable_secret):
    require_layer(isolation, "file_confinement", request)
    readable_secret.parent.chmod(0o777)
    readable_secret.chmod(0o666)
    target = readable_secret.parent / "dropped.txt"
    code = (
        f"for path, mode in (({str(readable_secret)!r}, 'a'), ({str(target)!r}, 'w')):\n"
        "    try:\n        open(path, mode).write('pwned')\n        print('WROTE')\n"
        "    except OSError as err:\n        print(err.strerror)\n"
    )
    result = _run(code)
    assert "WROTE" not in result.stdout and not target.exists() and "pwned" not in readable_secret.read_text()
