"""`code_tests`: the reply's Python code must pass the reference's unit tests, run in core's sandbox.

The reference is test code (a string of asserts), a list of test snippets (partial credit: the score is
the fraction passed), or a mapping {"tests": [...], "setup": "...", "timeout_s": 10, "memory_mb": 512}.
The code is the last ```python fenced block of the reply (or the whole reply when it has none). The
tests run in a process the code cannot reach (`llmkit.core.sandbox.run_code_tests`): patching builtins,
exiting early or returning objects that equal everything does not pass them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llmkit.core.errors import InvalidParameterError
from llmkit.core.sandbox import SandboxLimits, run_code_tests
from llmkit.core.verifiers import VerifierResult

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    """The last fenced Python block, or the whole reply."""
    blocks = _FENCE.findall(completion)
    return blocks[-1] if blocks else completion


def _tests_and_limits(reference: Any) -> tuple[list[str], str, SandboxLimits]:
    setup, timeout_s, memory_mb = "", 10.0, 512
    if isinstance(reference, Mapping):
        tests = reference.get("tests")
        setup = str(reference.get("setup", ""))
        timeout_s = float(reference.get("timeout_s", timeout_s))
        memory_mb = int(reference.get("memory_mb", memory_mb))
    else:
        tests = reference
    if isinstance(tests, str):
        tests = [tests]
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise InvalidParameterError("code_tests: the reference must be test code, a list of tests or {'tests': [...]}")
    return tests, setup, SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb)


def code_tests_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Score = fraction of the tests that pass; passed = all of them pass (within time and memory limits)."""
    tests, setup, limits = _tests_and_limits(reference)
    outcome = run_code_tests(extract_code(completion), tests, setup=setup, limits=limits)
    if outcome.status != "ok":
        return VerifierResult(False, 0.0, outcome.detail, {"status": outcome.status})
    results = list(outcome.results)
    return VerifierResult(outcome.passed, outcome.fraction, outcome.detail, {"results": results})
