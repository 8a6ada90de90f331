"""What core's sandbox enforces on this host, in words for the model: computed from
`llmkit.core.sandbox.sandbox_isolation()`, so a protection is promised only where it is in force."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from llmkit.core.sandbox import SandboxLimits, sandbox_isolation

# layer -> (what it means when in force, what is true when it is not)
LAYERS: dict[str, tuple[str, str]] = {
    "network_namespace": ("no network", "the network is reachable"),
    "read_only_filesystem": (
        "files outside its working directory are read-only",
        "it can write wherever the sandbox user may",
    ),
    "file_confinement": (
        "it can open only system, interpreter and working-directory files",
        "it can read any file the sandbox user may",
    ),
    "pid_namespace": ("every process it starts ends with it", "processes it starts are not fenced off"),
    "seccomp": (
        "a system-call filter (no namespaces, ptrace, mount, bpf)",
        "no system-call filter",
    ),
    "memory_budget": ("one memory budget for all its processes", "memory is limited per process only"),
    "disk_budget": ("a size-limited working directory", "the working directory has no size budget"),
}


@functools.cache
def host_isolation() -> Mapping[str, object]:
    """The protections this host grants (probed once per process by running an empty program)."""
    return dict(sandbox_isolation())


def limits_text(limits: SandboxLimits) -> str:
    return (
        f"at most {limits.timeout_s:g} s (CPU and wall clock), {limits.memory_mb} MB of memory per process, "
        f"{limits.max_processes} processes, files up to {limits.max_file_mb} MB; a fresh temporary working directory"
    )


def enforced_and_missing(isolation: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """(what holds, what does not) for each boolean layer in `isolation`; unknown layers by their names."""
    enforced, missing = [], []
    for key, value in isolation.items():
        if not isinstance(value, bool):
            continue
        on, off = LAYERS.get(key, (key.replace("_", " "), f"no {key.replace('_', ' ')}"))
        (enforced if value else missing).append(on if value else off)
    if isolation.get("uid") == 65534:
        enforced.append("it runs as user nobody")
    return enforced, missing


def describe_sandbox(isolation: Mapping[str, object], limits: SandboxLimits) -> str:
    """One paragraph: the limits always applied, then each layer in force and each missing on this host."""
    enforced, missing = enforced_and_missing(isolation)
    text = f"Enforced on this host: {limits_text(limits)}"
    text += "".join(f"; {item}" for item in enforced) + "."
    if missing:
        text += " Not enforced on this host: " + "; ".join(missing) + "."
    return text


def weaker_run(promised: Mapping[str, object], actual: Mapping[str, object]) -> list[str]:
    """The layers that `promised` said were in force and this run did not get."""
    return [
        LAYERS.get(key, (key.replace("_", " "), ""))[0]
        for key, value in promised.items()
        if value is True and actual.get(key) is False
    ]
