"""Core's sandbox for untrusted Python: `run_python` under layered limits, and a test harness whose
verdict the code under test cannot forge (`run_code_tests`). See docs/security.md."""

from .code_tests import CodeTestsOutcome, run_code_tests
from .runner import (
    SandboxLimits,
    SandboxResult,
    default_interpreter,
    landlock_abi,
    run_python,
    sandbox_isolation,
)

__all__ = [
    "CodeTestsOutcome",
    "SandboxLimits",
    "SandboxResult",
    "default_interpreter",
    "landlock_abi",
    "run_code_tests",
    "run_python",
    "sandbox_isolation",
]
