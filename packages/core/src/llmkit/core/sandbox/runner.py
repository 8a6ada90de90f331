"""Run untrusted Python (model-written code) in a subprocess under layered limits.

Always: wall-clock and CPU time, address space per process (RLIMIT_AS), process count, file size and
open files, a fresh temporary working directory, a scrubbed environment. Where the host allows it:
network, PID and mount namespaces (every mount but the working directory read-only), a size-limited
tmpfs working directory (disk budget), a cgroup with one memory and process budget for the whole run,
Landlock file confinement (system and interpreter trees read-only, the working directory read-write,
nothing else), a seccomp filter (no namespaces, ptrace, mount, keyring, bpf, ...), and `nobody` as the
user for a root caller. `SandboxResult.isolation` says which layers held; docs/security.md says what each
stops and what is left when one is missing. Not a boundary against kernel bugs or CPU side channels.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import InvalidParameterError
from .cgroup_budget import CgroupBudget
from .seccomp_filter import SeccompUnavailable, seccomp_program

NOBODY = 65534
BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
# Readable (and executable) under Landlock besides the interpreter's own installation tree.
SYSTEM_READ_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc")
DEVICE_PATHS = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
LANDLOCK_CREATE_RULESET, LANDLOCK_CREATE_RULESET_VERSION = 444, 1


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 16
    max_disk_mb: int = 64
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not value > 0:
                raise InvalidParameterError(f"SandboxLimits.{field.name} must be > 0, got {value}")


@dataclasses.dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed program ended: status is ok, error, timeout, memory_limit or output_limit.

    `isolation` maps each layer (network_namespace, pid_namespace, read_only_filesystem, disk_budget,
    memory_budget, file_confinement, seccomp) to whether it held for this run, and `uid` to the user it ran as.
    """

    status: str
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    isolation: Mapping[str, object]

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_python(
    code: str,
    *,
    stdin: str = "",
    files: Mapping[str, str] | None = None,
    argv: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    limits: SandboxLimits = SandboxLimits(),
    python: str | None = None,
) -> SandboxResult:
    """Run `code` as `main.py` in a fresh temporary directory (with `files` beside it) under `limits`."""
    drop_privileges = os.geteuid() == 0
    interpreter = python or default_interpreter(for_uid=NOBODY if drop_privileges else os.geteuid())
    workdir = Path(tempfile.mkdtemp(prefix="llmkit-sandbox-"))
    private = Path(tempfile.mkdtemp(prefix="llmkit-sandbox-io-"))
    budget: CgroupBudget | None = None
    try:
        _write_files(workdir, {"main.py": code, **(files or {})})
        if drop_privileges:
            _chown_tree(workdir, NOBODY)
        budget = CgroupBudget.create((limits.memory_mb + limits.max_disk_mb) * 2**20, limits.max_processes)
        layers = _confinement_layers()
        config = {
            "python": interpreter,
            "entry": str(workdir / "main.py"),
            "workdir": str(workdir.resolve()),
            "argv": list(argv),
            "env": _scrubbed_env(workdir, env),
            "rlimits": _rlimits(limits, drop_privileges),
            "drop_privileges": drop_privileges,
            "status_path": str(private / "isolation.json"),
            "cgroup_procs": budget.procs_files if budget else [],
            "disk_kb": limits.max_disk_mb * 1024,
            "disk_inodes": 4096 + limits.max_disk_mb * 64,
            "read_paths": [*SYSTEM_READ_PATHS, *_interpreter_prefixes(interpreter)],
            "device_paths": list(DEVICE_PATHS),
            **layers,
        }
        start = time.monotonic()
        returncode, timed_out = _spawn(config, workdir, private, stdin, limits.timeout_s)
        duration = time.monotonic() - start
        stdout = _read_capped(private / "stdout", limits.max_output_bytes)
        stderr = _read_capped(private / "stderr", limits.max_output_bytes)
        out_of_memory = budget is not None and budget.oom_killed()
        isolation = {
            **_read_isolation(private / "isolation.json"),
            "memory_budget": budget is not None,
            "file_confinement": bool(layers["landlock_abi"]),
            "seccomp": bool(layers["seccomp_bpf"]),
        }
    finally:
        if budget is not None:
            budget.close()
        _remove_tree(workdir)
        _remove_tree(private)
    status = _classify(returncode, timed_out, stderr, out_of_memory)
    return SandboxResult(status, returncode, stdout, stderr, duration, isolation)


def sandbox_isolation() -> Mapping[str, object]:
    """Which protections this machine grants, found by running an empty program: each layer -> True/False."""
    return run_python("", limits=SandboxLimits(timeout_s=30)).isolation


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or disabled."""
    return _landlock_abi()


@functools.cache
def _landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _confinement_layers() -> dict[str, object]:
    try:
        program = seccomp_program()
    except SeccompUnavailable:
        program = ""
    return {"landlock_abi": landlock_abi(), "seccomp_bpf": program}


def _interpreter_prefixes(interpreter: str) -> list[str]:
    """The installation trees of the interpreter (as named and resolved): `<prefix>/bin/python`."""
    prefixes = []
    for path in (os.path.abspath(interpreter), os.path.realpath(interpreter)):
        prefix = os.path.dirname(os.path.dirname(path))
        if prefix not in ("/", "") and prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes


def default_interpreter(for_uid: int | None = None) -> str:
    """A Python the sandbox user can execute: this one, its base interpreter, or the system's python3."""
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable), shutil.which("python3") or ""]
    candidates += ["/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in filter(None, candidates):
        path = os.path.realpath(candidate)
        if os.path.isfile(path) and (for_uid in (None, os.geteuid()) or _reachable_by_others(path)):
            return path
    raise InvalidParameterError(
        "no Python interpreter is executable by the sandbox user (uid nobody); pass python=... explicitly"
    )


def _reachable_by_others(path: str) -> bool:
    """Every directory above `path` is searchable and the file executable by any user."""
    parts = Path(path).parents
    if any(not os.stat(p).st_mode & stat.S_IXOTH for p in parts):
        return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


def _write_files(workdir: Path, files: Mapping[str, str]) -> None:
    for name, content in files.items():
        target = (workdir / name).resolve()
        if workdir.resolve() not in target.parents:
            raise InvalidParameterError(f"sandbox file {name!r} is outside the working directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def _chown_tree(root: Path, uid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


def _scrubbed_env(workdir: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }
    env.update(extra or {})
    return env


def _rlimits(limits: SandboxLimits, drop_privileges: bool) -> list[tuple[str, int]]:
    cpu = math.ceil(limits.timeout_s) + 1
    # RLIMIT_NPROC counts every process of the real user: as nobody that is ours alone; otherwise
    # leave room for the processes the user already runs.
    processes = limits.max_processes + (0 if drop_privileges else _processes_of(os.getuid()))
    return [
        ("RLIMIT_CPU", cpu),
        ("RLIMIT_AS", limits.memory_mb * 2**20),
        ("RLIMIT_NPROC", processes),
        ("RLIMIT_FSIZE", limits.max_file_mb * 2**20),
        ("RLIMIT_NOFILE", limits.max_open_files),
        ("RLIMIT_CORE", 0),
    ]


def _processes_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


def _spawn(config: dict, workdir: Path, private: Path, stdin: str, timeout_s: float) -> tuple[int, bool]:
    """Start the bootstrap; stdin goes through a pipe (no file the program could find and reread)."""
    with (private / "stdout").open("wb") as stdout, (private / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(BOOTSTRAP), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            env=config["env"],
            start_new_session=True,
            close_fds=True,
        )
        try:
            process.communicate(stdin.encode(), timeout=timeout_s)
            return process.returncode, False
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            return process.wait(), True
        finally:
            _kill_group(process.pid)  # stragglers that outlived a normal exit (no PID namespace)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_capped(path: Path, limit: int) -> str:
    with path.open("rb") as f:
        data = f.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + "\n…[output truncated]" if len(data) > limit else text


def _read_isolation(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        layers = ("network_namespace", "pid_namespace", "read_only_filesystem", "disk_budget")
        return {**dict.fromkeys(layers, False), "uid": os.geteuid()}


def _classify(returncode: int, timed_out: bool, stderr: str, out_of_memory: bool = False) -> str:
    if out_of_memory and returncode != 0:
        return "memory_limit"  # the cgroup's OOM killer (SIGKILL), not the clock
    if timed_out or returncode in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return "timeout"
    if returncode == 128 + signal.SIGXFSZ or (returncode != 0 and "File too large" in stderr):
        return "output_limit"  # Python ignores SIGXFSZ, so an oversized write raises OSError(EFBIG)
    if returncode != 0 and ("MemoryError" in stderr or "Cannot allocate memory" in stderr):
        return "memory_limit"
    return "ok" if returncode == 0 else "error"


def _remove_tree(root: Path) -> None:
    def make_writable_and_retry(function, path, _exc):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    shutil.rmtree(root, onerror=make_writable_and_retry)
