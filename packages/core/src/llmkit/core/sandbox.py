"""Run untrusted Python (model-written code) in a subprocess with limits: a best-effort boundary.

Limits: wall-clock and CPU time, address space (RLIMIT_AS), process count, file size and open
files; a fresh temporary working directory; a scrubbed environment. Where the OS allows it the
program also gets its own network namespace (no interfaces: no network at all) and PID namespace
(every process it starts dies with it) and mount namespace in which every file system but the
working directory is read-only, and a root caller runs it as `nobody`. This stops accidents and
common escapes (infinite loops, huge allocations, fork bombs, stray sockets, writes outside the
working directory, /tmp included); it is not a security boundary against a
determined attacker (kernel bugs, readable files, CPU side channels). `SandboxResult.isolation`
says which protections applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from .errors import InvalidParameterError

NOBODY = 65534

# Runs as the caller: unshare namespaces, fork the program as PID 1 of the new PID namespace,
# drop privileges and limits in the child, exec the interpreter; exit with the program's status.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, signal, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
NEWUSER, NEWNET, NEWPID, NEWNS = 0x10000000, 0x40000000, 0x20000000, 0x00020000
root = os.geteuid() == 0
iso = {"network_namespace": False, "pid_namespace": False, "uid": os.geteuid()}
base = 0 if root else NEWUSER
status = open(cfg["status_path"], "w")  # opened before the file systems turn read-only
for flags, keys in ((NEWNET | NEWPID, ("network_namespace", "pid_namespace")), (NEWNET, ("network_namespace",)), (NEWPID, ("pid_namespace",))):
    if libc.unshare(base | flags) == 0:
        base = 0
        for key in keys:
            iso[key] = True
        break
# A private mount namespace: the working directory stays a writable bind mount, every other mount
# becomes read-only in it (so /tmp, /dev/shm, ... cannot be written), the host's mounts are untouched.
iso["read_only_filesystem"] = False
if libc.unshare(base | NEWNS) == 0:
    MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
    workdir = cfg["workdir"].encode()
    ok = libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0
    ok = ok and libc.mount(workdir, workdir, None, MS_BIND | MS_REC, None) == 0
    if ok:
        # keep each mount's own flags: a user namespace may not clear the locked ones (nosuid, nodev, ...)
        known = {b"nosuid": 2, b"nodev": 4, b"noexec": 8, b"noatime": 1024, b"nodiratime": 2048, b"relatime": 1 << 21}
        with open("/proc/self/mountinfo", "rb") as f:
            mounts = [line.split()[4:6] for line in f]
        for point, options in mounts:
            point = point.decode("unicode_escape").encode("latin-1")
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(known.get(o, 0) for o in set(options.split(b",")))
            if point != workdir and libc.mount(None, point, None, flags, None) != 0:
                ok = False
        os.chdir(workdir)  # the working directory through its new (writable) mount
    iso["read_only_filesystem"] = ok
if root and cfg["drop_privileges"]:
    iso["uid"] = 65534
with status:
    json.dump(iso, status)
pid = os.fork()
if pid == 0:
    try:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the bootstrap
        for name, value in cfg["rlimits"]:
            resource.setrlimit(getattr(resource, name), (value, value))
        if root and cfg["drop_privileges"]:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        os.execve(cfg["python"], [cfg["python"], "-I", "-B", cfg["entry"], *cfg["argv"]], cfg["env"])
    except BaseException as err:
        os.write(2, ("sandbox: could not start the program: %r\n" % (err,)).encode())
        os._exit(125)
while True:
    try:
        _, status = os.waitpid(pid, 0)
        break
    except InterruptedError:
        continue
os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
"""


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 64
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not value > 0:
                raise InvalidParameterError(f"SandboxLimits.{field.name} must be > 0, got {value}")


@dataclasses.dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed program ended: status is ok, error, timeout, memory_limit or output_limit."""

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
    try:
        _write_files(workdir, {"main.py": code, **(files or {})})
        if drop_privileges:
            _chown_tree(workdir, NOBODY)
        config = {
            "python": interpreter,
            "entry": str(workdir / "main.py"),
            "workdir": str(workdir.resolve()),
            "argv": list(argv),
            "env": _scrubbed_env(workdir, env),
            "rlimits": _rlimits(limits, drop_privileges),
            "drop_privileges": drop_privileges,
            "status_path": str(private / "isolation.json"),
        }
        (private / "stdin").write_text(stdin)
        start = time.monotonic()
        returncode, timed_out = _spawn(config, workdir, private, limits.timeout_s)
        duration = time.monotonic() - start
        stdout = _read_capped(private / "stdout", limits.max_output_bytes)
        stderr = _read_capped(private / "stderr", limits.max_output_bytes)
        isolation = _read_isolation(private / "isolation.json")
    finally:
        _remove_tree(workdir)
        _remove_tree(private)
    status = _classify(returncode, timed_out, stderr)
    return SandboxResult(status, returncode, stdout, stderr, duration, isolation)


def sandbox_isolation() -> Mapping[str, object]:
    """Which protections this machine grants (namespaces, uid), found by running an empty program."""
    return run_python("", limits=SandboxLimits(timeout_s=30)).isolation


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


def _spawn(config: dict, workdir: Path, private: Path, timeout_s: float) -> tuple[int, bool]:
    with (
        (private / "stdin").open("rb") as stdin,
        (private / "stdout").open("wb") as stdout,
        (private / "stderr").open("wb") as stderr,
    ):
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, json.dumps(config)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            env=config["env"],
            start_new_session=True,
            close_fds=True,
        )
        try:
            return process.wait(timeout=timeout_s), False
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


def _read_isolation(path: Path) -> Mapping[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"network_namespace": False, "pid_namespace": False, "read_only_filesystem": False, "uid": os.geteuid()}


def _classify(returncode: int, timed_out: bool, stderr: str) -> str:
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
