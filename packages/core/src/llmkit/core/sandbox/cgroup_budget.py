"""A cgroup per sandboxed run: one memory budget and one process budget for all of its processes.

cgroup v2 is used where this process may create a child of its own cgroup with the memory and pids
controllers; else cgroup v1 (hybrid hosts: separate `memory` and `pids` hierarchies) where those are
writable (typically as root). Neither: `CgroupBudget.create` returns None and the run has only
per-process rlimits (documented in docs/security.md). The budget counts the tmpfs working directory's
pages too (they are charged to the writer's memory cgroup).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
import uuid
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for the v2 hierarchy) -> this process's cgroup path in it."""
    found: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _v2_parent() -> Path | None:
    path = _own_cgroups().get("")
    if path is None:
        return None
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        parent = mount / path.lstrip("/")
        if (mount / "cgroup.controllers").is_file() and parent.is_dir():
            return parent
    return None


def _v1_parents() -> dict[str, Path] | None:
    own = _own_cgroups()
    parents = {c: CGROUP_ROOT / c / own[c].lstrip("/") for c in ("memory", "pids") if c in own}
    return parents if len(parents) == 2 and all(p.is_dir() for p in parents.values()) else None


class CgroupBudget:
    """The run's cgroup(s): created with limits before the run, joined by the bootstrap, removed after."""

    def __init__(self, version: int, directories: list[Path]):
        self.version = version
        self.directories = directories

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.directories]

    @classmethod
    def create(cls, memory_bytes: int, max_processes: int) -> CgroupBudget | None:
        """A fresh cgroup with these limits, or None where this host does not let us make one."""
        kind = cgroup_kind()
        if kind is None:
            return None
        name = f"llmkit-sandbox-{uuid.uuid4().hex[:12]}"
        if kind == 2:
            directory = _v2_parent() / name  # type: ignore[operator]
            budget = cls(2, [directory])
            limits = [(directory / "memory.max", memory_bytes), (directory / "memory.swap.max", 0)]
            limits.append((directory / "pids.max", max_processes))
        else:
            parents = _v1_parents()
            assert parents is not None
            memory, pids = parents["memory"] / name, parents["pids"] / name
            budget = cls(1, [memory, pids])
            limits = [(memory / "memory.limit_in_bytes", memory_bytes), (pids / "pids.max", max_processes)]
            limits.append((memory / "memory.memsw.limit_in_bytes", memory_bytes))  # no swapping past it
        try:
            for directory in budget.directories:
                directory.mkdir()
            for file, value in limits:
                optional = "swap" in file.name or "memsw" in file.name  # only where swap is accounted
                if not optional or file.exists():
                    file.write_text(str(value))
        except BaseException:
            budget.close()
            raise
        return budget

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the run for exceeding the memory budget."""
        events = self.directories[0] / ("memory.events" if self.version == 2 else "memory.oom_control")
        with contextlib.suppress(OSError):
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def close(self) -> None:
        """Kill whatever is left in the cgroup(s) and remove them."""
        for directory in self.directories:
            if not directory.exists():
                continue
            for _ in range(100):
                pids = _read_pids(directory / "cgroup.procs")
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)
            with contextlib.suppress(OSError):
                directory.rmdir()


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


@functools.cache
def cgroup_kind() -> int | None:
    """2 or 1 where a per-run cgroup with memory and pids limits can be made here, else None (probed once)."""
    probe = f"llmkit-sandbox-probe-{os.getpid()}"
    v2 = _v2_parent()
    if v2 is not None:
        with contextlib.suppress(OSError):
            (v2 / probe).mkdir()
            try:
                controllers = (v2 / probe / "cgroup.controllers").read_text().split()
                if {"memory", "pids"} <= set(controllers):
                    return 2
            finally:
                (v2 / probe).rmdir()
    v1 = _v1_parents()
    if v1 is not None:
        made: list[Path] = []
        try:
            for parent in v1.values():
                (parent / probe).mkdir()
                made.append(parent / probe)
            if (made[0] / "memory.limit_in_bytes").is_file() and (made[1] / "pids.max").is_file():
                return 1
        except OSError:
            pass
        finally:
            for directory in made:
                with contextlib.suppress(OSError):
                    directory.rmdir()
    return None
