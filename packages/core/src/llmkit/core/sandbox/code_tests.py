"""Run a solution against unit tests in the sandbox so that the solution cannot forge the verdict.

The tests run in a checker process; the solution runs in a second process and is reached only
through proxies that return plain data (see `_code_tests_harness.py`). The nonce that marks the
verdict line and the tests travel on the checker's stdin, which the solution never sees. Used by the
`code_tests` verifier (llmkit-train) and pass@k scoring (llmkit-eval). Tests compare values: a result
that is not plain data (an instance of the solution's own class) equals only itself.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Sequence
from pathlib import Path

from ..errors import InvalidParameterError
from .runner import SandboxLimits, SandboxResult, run_python

_HARNESS = Path(__file__).with_name("_code_tests_harness.py")


@dataclasses.dataclass(frozen=True)
class CodeTestsOutcome:
    """status: ok (the checker reported), error (the solution does not load, or no verdict), or the
    sandbox's timeout / memory_limit / output_limit. failures[i] is None where test i passed, else the
    name of the exception it raised (AssertionError, MemoryError, ...; "" when it never ran)."""

    status: str
    failures: tuple[str | None, ...]
    detail: str
    sandbox: SandboxResult

    @property
    def results(self) -> tuple[bool, ...]:
        return tuple(failure is None for failure in self.failures)

    @property
    def passed(self) -> bool:
        return self.status == "ok" and bool(self.results) and all(self.results)

    @property
    def fraction(self) -> float:
        return sum(self.results) / len(self.results) if self.results else 0.0


def run_code_tests(
    solution: str, tests: Sequence[str], *, setup: str = "", limits: SandboxLimits = SandboxLimits()
) -> CodeTestsOutcome:
    """Run `setup + solution` in one process and each test (Python code that raises on failure) in another."""
    if isinstance(tests, str) or not tests or not all(isinstance(t, str) for t in tests):
        raise InvalidParameterError("run_code_tests: tests must be a non-empty sequence of code strings")
    nonce = f"@@llmkit-verdict-{secrets.token_hex(16)}@@"
    harness = _HARNESS.read_text()
    outcome = run_python(
        harness,
        argv=("check",),
        stdin=json.dumps({"nonce": nonce, "tests": list(tests)}),
        files={"server.py": harness, "setup.py": setup, "solution.py": solution},
        limits=limits,
    )
    failed = ("",) * len(tests)
    line = next((ln for ln in reversed(outcome.stdout.splitlines()) if ln.startswith(nonce)), None)
    if outcome.status != "ok" or line is None:
        detail = f"sandbox status {outcome.status}" + (f": {outcome.stderr.strip()[-300:]}" if outcome.stderr else "")
        return CodeTestsOutcome(outcome.status if outcome.status != "ok" else "error", failed, detail, outcome)
    verdict = json.loads(line[len(nonce) :])
    if "error" in verdict:
        return CodeTestsOutcome("error", failed, f"the code does not run: {verdict['error']}", outcome)
    failures = tuple(None if f is None else str(f) for f in verdict["failures"])
    passed = failures.count(None)
    return CodeTestsOutcome("ok", failures, f"{passed}/{len(failures)} tests pass", outcome)
