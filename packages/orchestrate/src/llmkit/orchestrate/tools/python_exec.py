"""The `python` toolbox: model-written code runs in core's subprocess sandbox, never in this process."""

from __future__ import annotations

import dataclasses

from llmkit.core.sandbox import SandboxLimits, SandboxResult, run_python

from .sandbox_description import describe_sandbox, host_isolation, weaker_run
from .tool import Tool, tool
from .toolbox import Toolbox

_REASONS = {
    "timeout": "stopped: time limit of {timeout_s:g} s (CPU or wall clock) reached",
    "memory_limit": "stopped: memory limit of {memory_mb} MB reached",
    "output_limit": "stopped: file-size limit of {max_file_mb} MB reached (output or a written file)",
    "error": "the program failed (exit status {returncode})",
}


def describe_run(result: SandboxResult, limits: SandboxLimits) -> str:
    """The run as the model sees it: why it stopped (when it did), stdout, stderr."""
    lines = [f"status: {result.status}"]
    if result.status in _REASONS:
        lines.append(_REASONS[result.status].format(**dataclasses.asdict(limits), returncode=result.returncode))
    if result.stdout:
        lines += ["stdout:", result.stdout.rstrip("\n")]
    if result.stderr:
        lines += ["stderr:", result.stderr.rstrip("\n")[-2000:]]
    if not result.stdout and not result.stderr:
        lines.append("(no output: print what you want to see)")
    return "\n".join(lines)


class PythonToolbox(Toolbox):
    """Runs Python in core's sandbox (time, memory, process and file-size limits, a fresh temporary working
    directory, a scrubbed environment; namespaces, Landlock and seccomp where the host has them). Running
    model-written code requires approval unless a policy allows it. The tool's description says which
    protections this host actually enforces."""

    def __init__(
        self,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
        max_processes: int = 32,
        max_file_mb: int = 16,
        max_output_bytes: int = 16384,
    ):
        self.limits = SandboxLimits(
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            max_processes=max_processes,
            max_file_mb=max_file_mb,
            max_output_bytes=max_output_bytes,
        )
        self.last_result: SandboxResult | None = None
        self.isolation = host_isolation()

    def tools(self) -> list[Tool]:
        """`run_python` described with what the sandbox enforces here (and what it does not)."""
        (run,) = super().tools()
        description = f"{run.description}\n{describe_sandbox(self.isolation, self.limits)}"
        return [dataclasses.replace(run, description=description)]

    @tool(permission="requires_approval")
    def run_python(self, code: str) -> str:
        """Run a Python program in a sandbox and return its status, stdout and stderr.

        Args:
            code: a complete Python program; print the values you need.
        """
        self.last_result = run_python(code, limits=self.limits)
        text = describe_run(self.last_result, self.limits)
        lacking = weaker_run(self.isolation, self.last_result.isolation)
        if lacking:
            text += "\nwarning: this run did not get: " + "; ".join(lacking)
        return text
